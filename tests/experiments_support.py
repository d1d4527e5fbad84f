"""Shared setup of the experiment tests: a project with an owner, a viewer and an outsider,
MNIST example sources, and rows fed straight into the database the way the worker stores
them (so pages and streams are tested without running a federation)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from sqlalchemy import select

from tests.conftest import login, submit_form

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
HYPERPARAMETERS = b"rounds = 3\nnum_clients = 2\nlocal_epochs = 1\nbatch_size = 32\n"


def zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def upload(client, project_id: int, kind: str, files: dict, extra: dict | None = None):
    """POST an upload form of `kind` ("datasets", "model-code", "hyperparameters")."""
    data = dict(extra or {})
    for field, value in files.items():
        if isinstance(value, list):
            data[field] = [(io.BytesIO(content), name) for name, content in value]
        else:
            name, content = value
            data[field] = (io.BytesIO(content), name)
    return submit_form(
        client,
        f"/projects/{project_id}/{kind}",
        data,
        content_type="multipart/form-data",
    )


def setup_project(make_user, make_project, client):
    owner = make_user("dona@example.org")
    viewer = make_user("leitor@example.org")
    outsider = make_user("fora@example.org")
    project_id = make_project("Federado", owner, viewers=[viewer])
    other_project = make_project("Outro", outsider)
    login(client, "dona@example.org")
    return {
        "owner": owner,
        "viewer": viewer,
        "outsider": outsider,
        "project_id": project_id,
        "other_project": other_project,
    }


def upload_mnist_assets(client, project_id: int) -> dict[str, int]:
    """Upload examples/mnist's dataset, API code and a 3-round hyperparameter file."""
    from flautim.models import Dataset, HyperparameterFile, ModelCode, db

    r = upload(client, project_id, "datasets", {"dataset_file": ("dataset.py", (MNIST / "dataset.py").read_bytes())}, {"name": "MNIST"})
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    r = upload(client, project_id, "model-code", {"file": ("api.py", (MNIST / "api.py").read_bytes())})
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    r = upload(client, project_id, "hyperparameters", {"file": ("hyperparameters.py", HYPERPARAMETERS)})
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    return {
        "dataset_id": db.session.scalar(select(Dataset.id).where(Dataset.project_id == project_id)),
        "model_code_id": db.session.scalar(select(ModelCode.id).where(ModelCode.project_id == project_id)),
        "hyperparameter_file_id": db.session.scalar(
            select(HyperparameterFile.id).where(HyperparameterFile.project_id == project_id)
        ),
    }


# --- a scripted run, stored by the worker's real Ingestor -----------------------------------

def make_experiment(project_id: int, ids: dict[str, int], name: str = "Exp", state: str = "running"):
    """An experiment moved through the state machine to `state` (committed); returns its id."""
    from flautim.models import Experiment, ExperimentState, db

    experiment = Experiment(project_id=project_id, name=name, rounds_total=3, summary={}, **ids)
    db.session.add(experiment)
    db.session.commit()
    path = {
        "queued": ["queued"],
        "running": ["queued", "preparing", "running"],
        "succeeded": ["queued", "preparing", "running", "succeeded"],
        "failed": ["queued", "preparing", "running", "failed"],
    }[state]
    for step in path:
        experiment.transition(ExperimentState(step))
    db.session.commit()
    return experiment.id


def event_line(type_: str, **fields) -> str:
    import json

    from flautim.fl.events import EVENT_PREFIX, make_event

    return EVENT_PREFIX + json.dumps(make_event(type_, **fields))


def scripted_run_lines(out_dir: Path, rounds: int = 3, clients: int = 2, fail_at: int | None = None):
    """The (source, line) pairs a small federation prints, with real checkpoint files."""
    import torch
    from safetensors.torch import save_file

    yield "server", event_line("run_started", experiment="Exp", transport="fast", clients=clients, rounds=rounds, strategy="FedAvg", hyperparameters={"rounds": rounds})
    yield "server", event_line(
        "partition_summary",
        method="iid",
        clients=[{"client": i, "train_examples": 100 + i, "val_examples": 10, "label_counts": {"0": 50, "1": 50 + i}} for i in range(clients)],
    )
    yield "server", event_line("central_evaluate", round=0, loss=2.3, metrics={"accuracy": 0.1})
    for r in range(1, rounds + 1):
        yield "server", event_line("round_started", round=r)
        for c in range(clients):
            yield f"client-{c}", f"client {c} training round {r}"
            if fail_at == r:
                yield "server", event_line("error", what="training_loop raised ValueError: bad shape", where="api.py:42", hint="check the input size", kind="user_code", client=c)
                yield "server", event_line("run_finished", status="failed", duration_s=1.5, rounds_completed=r - 1)
                return
            yield "server", event_line("client_train", round=r, client=c, loss=1.0 / r + c * 0.01, metrics={"accuracy": 0.5 + r * 0.1}, examples=100 + c, duration_s=0.2)
            yield "server", event_line("client_evaluate", round=r, client=c, loss=1.1 / r, metrics={"accuracy": 0.45 + r * 0.1}, examples=10, duration_s=0.05)
        yield "server", event_line("aggregated", round=r, phase="train", loss=1.0 / r, metrics={"accuracy": 0.5 + r * 0.1})
        yield "server", event_line("aggregated", round=r, phase="evaluate", loss=1.1 / r, metrics={"accuracy": 0.45 + r * 0.1})
        yield "server", event_line("central_evaluate", round=r, loss=1.2 / r, metrics={"accuracy": 0.4 + r * 0.1})
        yield "server", f"round {r} done"
        state = {"weight": torch.full((2, 2), float(r)), "bias": torch.zeros(2)}
        (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        kinds = ["round"] + (["best", "final"] if r == rounds else [])
        for kind in kinds:
            torch.save(state, out_dir / "checkpoints" / f"{kind}-{r}.pt")
            save_file(state, str(out_dir / "checkpoints" / f"{kind}-{r}.safetensors"))
            yield "server", event_line(
                "checkpoint",
                round=r,
                kind=kind,
                files={"pytorch": f"checkpoints/{kind}-{r}.pt", "safetensors": f"checkpoints/{kind}-{r}.safetensors"},
                metrics={"accuracy": 0.4 + r * 0.1, "loss": 1.2 / r},
            )
    yield "server", event_line("run_finished", status="completed", duration_s=4.5, rounds_completed=rounds)


def feed_run(app, experiment_id: int, out_dir: Path, lines, finish: str | None = "succeeded") -> None:
    """Push `lines` through the worker's Ingestor (rows + Redis publish), then finish."""
    import redis as redis_lib

    from flautim.models import Experiment, ExperimentState, FailureKind, db
    from flautim.worker.ingest import Ingestor
    from flautim.worker.queue import publish_state

    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        attempt = experiment.attempt
    client = redis_lib.Redis.from_url(app.config["FLAUTIM_REDIS_URL_RESOLVED"])
    ingestor = Ingestor(app.extensions["flautim_config"], experiment_id, attempt, out_dir, redis_client=client)
    for source, line in lines:
        ingestor.line(source, "stdout", line)
    ingestor.close()
    if finish:
        with app.app_context():
            experiment = db.session.get(Experiment, experiment_id)
            if finish == "failed":
                experiment.fail(FailureKind.USER_CODE, "training_loop raised ValueError: bad shape")
            else:
                experiment.transition(ExperimentState(finish))
            db.session.commit()
            publish_state(experiment, app.extensions["flautim_config"])


def switch_user(client, email: str) -> None:
    """Log out (through the real form) and log in as `email`."""
    from flask import g

    from tests.conftest import csrf_token_from, login

    token = csrf_token_from(client.get("/projects/").get_data(as_text=True))
    client.post("/auth/logout", data={"csrf_token": token})
    # Flask-Login caches the user on `g`, which the tests' app context shares with requests.
    g.pop("_login_user", None)
    login(client, email)

