"""A run goes to the queue its hyperparameters ask for: device="cuda" to experiments-gpu,
anything else to experiments, whether the experiment is new, run again or cloned. Through
the real pages (create, review, run, clone), real PostgreSQL and real Redis/RQ."""

from __future__ import annotations

import pytest
import redis
from rq.job import Job

from tests.conftest import submit_form
from tests.experiments_support import HYPERPARAMETERS, setup_project, upload, upload_mnist_assets

CUDA = HYPERPARAMETERS + b'device = "cuda"\n'


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    from flautim.models import HyperparameterFile

    c = setup_project(make_user, make_project, client)
    c["ids"] = upload_mnist_assets(client, c["project_id"])
    assert upload(client, c["project_id"], "hyperparameters", {"file": ("cuda.py", CUDA)}).status_code == 302
    c["cuda_hp"] = db_session.query(HyperparameterFile).filter_by(filename="cuda.py").one().id
    return c


def _create(client, ctx, name: str, hyperparameter_file_id: int, clone: int | None = None) -> int:
    from flautim.models import Experiment, db

    url = f"/projects/{ctx['project_id']}/experiments/new" + (f"?clone={clone}" if clone else "")
    fields = {**{k: str(v) for k, v in ctx["ids"].items()}, "hyperparameter_file_id": str(hyperparameter_file_id)}
    response = submit_form(client, url, {"name": name, **fields})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return db.session.query(Experiment).filter_by(name=name).one().id


def _run(client, ctx, experiment_id: int) -> str:
    """Press "Executar experimento"; the RQ queue the run's job was put on. The run is then
    cancelled: a project has one run at a time on each queue (fair share)."""
    from flautim.models import Experiment, db

    page = f"/projects/{ctx['project_id']}/experiments/{experiment_id}"
    response = submit_form(client, f"{page}/run", {}, page=f"{page}/review")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.expire_all()
    experiment = db.session.get(Experiment, experiment_id)
    assert experiment.job_id, experiment.failure_reason
    connection = redis.Redis.from_url(client.application.config["FLAUTIM_REDIS_URL_RESOLVED"])
    origin = Job.fetch(experiment.job_id, connection=connection).origin
    _cancel(client, ctx, experiment_id)
    return origin


def _cancel(client, ctx, experiment_id: int) -> None:
    page = f"/projects/{ctx['project_id']}/experiments/{experiment_id}"
    assert submit_form(client, f"{page}/cancel", {}, page=page).status_code == 302


def test_a_cuda_experiment_runs_on_the_gpu_queue_new_rerun_and_cloned(app, client, ctx, db_session):
    from flautim.models import Experiment

    cuda = _create(client, ctx, "na GPU", ctx["cuda_hp"])
    cpu = _create(client, ctx, "na CPU", ctx["ids"]["hyperparameter_file_id"])
    assert db_session.get(Experiment, cuda).wants_gpu is True
    assert db_session.get(Experiment, cpu).wants_gpu is False
    assert _run(client, ctx, cuda) == "experiments-gpu"
    assert _run(client, ctx, cpu) == "experiments"
    assert _run(client, ctx, cuda) == "experiments-gpu"  # run again: a new attempt, same queue

    # A clone asks what its own hyperparameters ask: the cuda file keeps it on the GPU, a
    # cpu file takes it off, and a cpu experiment cloned with the cuda file moves to the GPU.
    same = _create(client, ctx, "clone cuda", ctx["cuda_hp"], clone=cuda)
    to_cpu = _create(client, ctx, "clone cpu", ctx["ids"]["hyperparameter_file_id"], clone=cuda)
    to_gpu = _create(client, ctx, "clone para GPU", ctx["cuda_hp"], clone=cpu)
    assert [_run(client, ctx, e) for e in (same, to_cpu, to_gpu)] == [
        "experiments-gpu", "experiments", "experiments-gpu"]
