"""`flautim submit` / `flautim download` against a live server over real HTTP.

The first tests play the worker's part from a thread (writing the rows the worker writes),
so they check the client and the API without depending on the sandbox; the slow test runs a
real federated training through the embedded worker and the local sandbox.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from flautim.api_client.cli import download_main, submit_main

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT / "examples" / "mnist"


def _bundle(tmp_path: Path, rounds: int = 3, clients: int = 2) -> Path:
    folder = tmp_path / "meu-experimento"
    folder.mkdir()
    for name in ("dataset.py", "api.py"):
        shutil.copy(MNIST / name, folder / name)
    (folder / "data").mkdir()
    (folder / "data" / "notes.txt").write_text("dados de teste\n")
    (folder / "data" / "sub").mkdir()
    (folder / "data" / "sub" / "labels.csv").write_text("a,b\n1,2\n")
    hp = (MNIST / "hyperparameters.py").read_text()
    hp = hp.replace("rounds = 10", f"rounds = {rounds}").replace("num_clients = 10", f"num_clients = {clients}")
    (folder / "hyperparameters.py").write_text(hp)
    return folder


def _play_worker(app, experiment_name: str, rounds: int, final_state: str, artifact: bytes | None):
    """Wait for the experiment the CLI creates, then write what a worker would, round by round."""
    import hashlib

    from flautim import storage
    from flautim.models import Experiment, ExperimentEvent, ExperimentState, ModelArtifact, db

    with app.app_context():
        deadline = time.monotonic() + 30
        exp = None
        while exp is None and time.monotonic() < deadline:
            exp = db.session.scalar(select(Experiment).where(Experiment.name == experiment_name))
            if exp is None or exp.state != ExperimentState.QUEUED:
                exp = None
                db.session.rollback()
                time.sleep(0.1)
        assert exp is not None, "the CLI never queued the experiment"
        exp.transition(ExperimentState.PREPARING)
        exp.transition(ExperimentState.RUNNING)
        db.session.add(ExperimentEvent(experiment_id=exp.id, attempt=exp.attempt, type="run_started",
                                       payload={"rounds": rounds, "clients": 2}))
        db.session.commit()
        for r in range(1, rounds + 1):
            time.sleep(0.3)
            db.session.add(ExperimentEvent(experiment_id=exp.id, attempt=exp.attempt, type="central_evaluate",
                                           payload={"round": r, "loss": 1.0 / r, "metrics": {"accuracy": 0.5 + r / 10}}))
            exp.rounds_done = r
            db.session.commit()
        if artifact is not None:
            folder = storage.attempt_dir(app.extensions["flautim_config"].data_path, exp.project_id, exp.id, exp.attempt)
            folder.mkdir(parents=True, exist_ok=True)
            for fmt, name in (("pytorch", "final.pt"), ("safetensors", "final.safetensors")):
                (folder / name).write_bytes(artifact + fmt.encode())
                db.session.add(ModelArtifact(
                    experiment_id=exp.id, attempt=exp.attempt, round=rounds, kind="final", format=fmt,
                    storage_path=storage.relative(app.extensions["flautim_config"].data_path, folder / name),
                    size_bytes=len(artifact) + len(fmt), sha256=hashlib.sha256(artifact + fmt.encode()).hexdigest()))
        if final_state == "failed":
            from flautim.models import FailureKind

            exp.fail(FailureKind.USER_CODE, "api.py, linha 12: ZeroDivisionError")
        else:
            exp.transition(ExperimentState(final_state))
        db.session.commit()


@pytest.fixture
def owner(make_user, make_project, make_token):
    uid = make_user("dona@example.org")
    return {"project": make_project("CLI", uid), "token": make_token(uid)}


def _run(main, argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_submit_follows_to_success_then_download(app, live_server, owner, tmp_path):
    folder = _bundle(tmp_path)
    worker = threading.Thread(target=_play_worker, args=(app, "meu-experimento", 3, "succeeded", b"pesos"))
    worker.start()
    code, out, err = _run(submit_main, [str(folder), "--project", str(owner["project"]),
                                        "--url", live_server.url, "--token", owner["token"], "--poll", "0.2"])
    worker.join(30)
    assert code == 0, err
    assert "rodada 3/3" in err and "accuracy 80.00%" in err and "loss 0.3333" in err
    assert "succeeded" in out and "3/3 rodadas" in out

    # The data folder went up as one zip, unpacked server-side with its sub-folder.
    from flautim import storage
    from flautim.models import Dataset, db

    with app.app_context():
        dataset = db.session.scalars(select(Dataset)).one()
        root = storage.absolute(app.extensions["flautim_config"].data_path, dataset.storage_path)
        assert (root / "data" / "sub" / "labels.csv").read_text() == "a,b\n1,2\n"
        assert dataset.file_count == 2

    target = tmp_path / "modelo.safetensors"
    code, out, err = _run(download_main, ["meu-experimento", "--project", str(owner["project"]), "--url",
                                          live_server.url, "--token", owner["token"], "--format", "safetensors",
                                          "-o", str(target)])
    assert code == 0, err
    assert target.read_bytes() == b"pesossafetensors"
    code, out, err = _run(download_main, ["meu-experimento", "--project", str(owner["project"]), "--url",
                                          live_server.url, "--token", owner["token"], "--kind", "best"])
    assert code == 1 and "best" in err


def test_submit_exit_code_of_a_failed_run(app, live_server, owner, tmp_path, monkeypatch):
    folder = _bundle(tmp_path)
    monkeypatch.setenv("FLAUTIM_TOKEN", owner["token"])
    worker = threading.Thread(target=_play_worker, args=(app, "falha", 2, "failed", None))
    worker.start()
    code, out, err = _run(submit_main, [str(folder), "--project", str(owner["project"]), "--name", "falha",
                                        "--url", live_server.url, "--poll", "0.2"])
    worker.join(30)
    assert code == 1
    assert "failed" in out and "ZeroDivisionError" in out


def test_submit_refuses_bad_inputs(live_server, owner, tmp_path, monkeypatch):
    monkeypatch.delenv("FLAUTIM_TOKEN", raising=False)
    folder = _bundle(tmp_path)
    code, _out, err = _run(submit_main, [str(folder), "--project", str(owner["project"]), "--url", live_server.url])
    assert code == 2 and "FLAUTIM_TOKEN" in err

    code, _out, err = _run(submit_main, [str(tmp_path / "nada"), "--project", "1", "--token", "x"])
    assert code == 2 and "não existe" in err

    (folder / "api.py").unlink()
    code, _out, err = _run(submit_main, [str(folder), "--project", "1", "--token", "x"])
    assert code == 2 and "api.py" in err


def test_submit_reports_server_errors(live_server, owner, tmp_path):
    folder = _bundle(tmp_path)
    code, _out, err = _run(submit_main, [str(folder), "--project", str(owner["project"]), "--url",
                                         live_server.url, "--token", "flt_revogado"])
    assert code == 5 and "HTTP 401" in err

    code, _out, err = _run(submit_main, [str(folder), "--project", "987654", "--url",
                                         live_server.url, "--token", owner["token"]])
    assert code == 5 and "HTTP 404" in err

    (folder / "hyperparameters.py").write_text("rounds = 3\nlr = input()\n")
    code, _out, err = _run(submit_main, [str(folder), "--project", str(owner["project"]), "--url",
                                         live_server.url, "--token", owner["token"]])
    assert code == 5 and "campo hyperparameters_file" in err and "linha 2" in err


def test_unreachable_server(owner, tmp_path):
    from tests.conftest import free_port

    code, _out, err = _run(download_main, ["1", "--project", "1", "--token", owner["token"],
                                           "--url", f"http://127.0.0.1:{free_port()}"])
    assert code == 5 and "conectar" in err


@pytest.mark.slow
def test_submit_a_real_run_and_load_the_downloaded_model(app, live_server, owner, tmp_path):
    """The whole path: upload over HTTP, the real queue and worker (local sandbox), the
    runtime's processes, progress in the terminal, then the checkpoint loaded with torch."""
    from flautim.models import Experiment, ExperimentState, db
    from flautim.worker.database import use_config
    from flautim.worker.main import run_worker
    from flautim.worker.queue import queue_for

    tiny = ROOT / "tests" / "fl" / "bundles" / "tiny"
    folder = tmp_path / "tiny"
    shutil.copytree(tiny, folder)
    (folder / "data").mkdir(exist_ok=True)
    config = app.extensions["flautim_config"]
    use_config(config)

    result: dict = {}

    def submit():
        result["run"] = _run(submit_main, [str(folder), "--project", str(owner["project"]), "--url",
                                           live_server.url, "--token", owner["token"], "--poll", "0.3",
                                           "--timeout", "600"])

    cli = threading.Thread(target=submit)
    cli.start()
    with app.app_context():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            queued = db.session.scalar(select(Experiment).where(Experiment.state == ExperimentState.QUEUED))
            db.session.rollback()
            if queued is not None:
                break
            time.sleep(0.2)
        assert queued is not None, "the CLI did not queue the experiment"
    # The row says queued before the job reaches RQ (the dispatcher writes the job id, then
    # enqueues): a burst worker started in between would find nothing and quit.
    jobs = queue_for("experiments", config)
    while jobs.count == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert jobs.count == 1, "the queued experiment never reached the RQ queue"
    # RQ's worker wants the main thread (signals); the CLI follows from its own thread.
    run_worker(["experiments"], burst=True, config=config)
    cli.join(120)
    code, out, err = result["run"]
    assert code == 0, out + err
    assert "rodada 3/3" in err and "succeeded" in out

    target = tmp_path / "final.pt"
    code, out, err = _run(download_main, ["tiny", "--project", str(owner["project"]), "--url", live_server.url,
                                          "--token", owner["token"], "-o", str(target)])
    assert code == 0, err
    import torch

    tensors = torch.load(target, map_location="cpu", weights_only=True)
    assert isinstance(tensors, dict) and tensors
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    assert all(torch.isfinite(v).all() for v in tensors.values())
