"""Fair share: one tenant's backlog does not delay another tenant's run. Real PostgreSQL,
Redis, an RQ worker (FlautimWorker, burst mode) and the local sandbox running real runs."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import select

from flautim.models import Experiment, ExperimentState, db
from flautim.worker.main import FlautimWorker
from flautim.worker.queue import EXPERIMENT_QUEUE, enqueue_experiment, queue_for
from tests.conftest import REDIS_URL

from .bundles import TINY, store_experiment, write_bundle

ONE_ROUND = (TINY / "hyperparameters.py").read_text().replace("rounds = 3", "rounds = 1")


def _tenants(app, make_user, make_project, tmp_path, a_runs: int):
    a_user, b_user = make_user("a@example.com"), make_user("b@example.com")
    a_project, b_project = make_project("A", a_user), make_project("B", b_user)
    bundle = write_bundle(tmp_path / "bundle", hyperparameters=ONE_ROUND)
    a_ids = [store_experiment(app, bundle, a_project, a_user, name=f"a{i}") for i in range(a_runs)]
    b_id = store_experiment(app, bundle, b_project, b_user, name="b")
    with app.app_context():
        for experiment_id in [*a_ids, b_id]:  # A queues all of its runs first, then B its one
            enqueue_experiment(db.session.get(Experiment, experiment_id), app.extensions["flautim_config"])
    return a_ids, b_id


def test_handing_over_keeps_one_run_per_project_on_rq_and_the_rest_in_the_database(
    app, worker_config, make_user, make_project, tmp_path
):
    a_ids, b_id = _tenants(app, make_user, make_project, tmp_path, a_runs=10)
    queue = queue_for(EXPERIMENT_QUEUE, worker_config)
    with app.app_context():
        rows = {e.id: e for e in db.session.scalars(select(Experiment))}
        on_rq = [job.args[0] for job in queue.get_jobs()]
        assert on_rq == [a_ids[0], b_id]
        assert all(rows[i].state == ExperimentState.QUEUED for i in [*a_ids, b_id])
        assert [i for i in a_ids if rows[i].job_id is None] == a_ids[1:]  # waiting in the database


@pytest.mark.slow
def test_a_second_tenants_run_starts_before_the_first_tenants_tenth(
    app, worker_config, make_user, make_project, tmp_path
):
    a_ids, b_id = _tenants(app, make_user, make_project, tmp_path, a_runs=10)

    # One worker takes three jobs: first in first out, they would all be A's.
    worker = FlautimWorker([EXPERIMENT_QUEUE], connection=redis.Redis.from_url(REDIS_URL))
    worker.work(burst=True, max_jobs=3, with_scheduler=False, logging_level="WARNING")

    with app.app_context():
        rows = {e.id: e for e in db.session.scalars(select(Experiment))}
        started = sorted((e for e in rows.values() if e.started_at), key=lambda e: e.started_at)
        assert [e.id for e in started] == [a_ids[0], b_id, a_ids[1]]
        for e in started:
            assert e.state == ExperimentState.SUCCEEDED, e.failure_reason
        assert all(rows[i].state == ExperimentState.QUEUED for i in a_ids[2:])
        # After each job the worker handed over A's next run: one on RQ, seven waiting.
        assert [rows[i].job_id is None for i in a_ids[2:]] == [False] + [True] * 7
