"""Queued experiments whose RQ jobs Redis lost are queued again by the workers."""

from __future__ import annotations

from datetime import timedelta

from rq.job import Job

from flautim.models import Experiment, ExperimentState, db, utcnow
from flautim.worker.main import requeue_lost
from flautim.worker.queue import enqueue_experiment, queue_for, redis_for

from .bundles import store_experiment, write_bundle


def _set(app, experiment_id, *, minutes_ago: float, **fields) -> None:
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        if experiment.state != ExperimentState.QUEUED:
            experiment.transition(ExperimentState.QUEUED)
        experiment.queued_at = utcnow() - timedelta(minutes=minutes_ago)
        for name, value in fields.items():
            setattr(experiment, name, value)
        db.session.commit()


def test_a_queued_run_whose_job_vanished_is_queued_again(app, worker_config, owner, tmp_path):
    user_id, project_id = owner
    lost = store_experiment(app, write_bundle(tmp_path / "a"), project_id, user_id, name="lost")
    fresh = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id, name="fresh")
    alive = store_experiment(app, write_bundle(tmp_path / "c"), project_id, user_id, name="alive")
    waiting = store_experiment(app, write_bundle(tmp_path / "d"), project_id, user_id, name="waiting")
    with app.app_context():
        enqueue_experiment(db.session.get(Experiment, alive), app.extensions["flautim_config"])
    _set(app, alive, minutes_ago=5)  # queued a while ago; its job still exists
    _set(app, lost, minutes_ago=5, job_id="job-that-redis-forgot", dispatched_at=utcnow() - timedelta(minutes=5))
    # Handed to RQ right now: its row is committed a moment before its job exists.
    _set(app, fresh, minutes_ago=5, job_id="being-enqueued", dispatched_at=utcnow())
    # Waiting its turn in the database (fair share): not lost, the dispatcher's to hand over.
    _set(app, waiting, minutes_ago=5)

    connection = redis_for(worker_config)
    assert requeue_lost(worker_config, connection) == [lost]

    with app.app_context():
        experiment = db.session.get(Experiment, lost)
        assert experiment.state == ExperimentState.QUEUED
        job = Job.fetch(experiment.job_id, connection=connection)
        assert job.args == (lost, experiment.attempt)
        assert db.session.get(Experiment, fresh).job_id == "being-enqueued"
        assert db.session.get(Experiment, waiting).job_id is None
    assert len(queue_for("experiments", worker_config)) == 2
    # Once queued again, the next check leaves it alone.
    assert requeue_lost(worker_config, connection) == []
