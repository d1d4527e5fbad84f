"""`flautim run --transport flower`: a real SuperLink and SuperNodes running the generic apps."""

from __future__ import annotations

import pytest

from flautim.fl.transport.flower_deployment import write_fab_dir
from tests.fl.runs import copy_bundle, flautim_run


def test_fab_folder_is_a_valid_flower_app(tmp_path):
    import tomllib

    from flwr.common.config import get_fab_config, validate_config  # noqa: F401

    app = write_fab_dir(tmp_path / "app", {"bundle": "/b/x \"quoted\"", "clients": 3, "events-file": "/o/e.jsonl"})
    config = tomllib.loads((app / "pyproject.toml").read_text())
    ok, errors, _ = validate_config(config, check_module=True, project_dir=app)
    assert ok, errors
    assert config["tool"]["flwr"]["app"]["config"] == {"bundle": '/b/x "quoted"', "clients": 3, "events-file": "/o/e.jsonl"}


@pytest.mark.slow
def test_flower_deployment_runs_the_bundle(tmp_path):
    bundle = copy_bundle(tmp_path)
    code, events, stderr = flautim_run(bundle, "--transport", "flower", "--clients", "2", "--rounds", "1", out=tmp_path / "out", timeout=900)
    assert code == 0, stderr[-4000:]
    types = [e["type"] for e in events]
    assert types[0] == "partition_summary"
    started = next(e for e in events if e["type"] == "run_started")
    assert started["transport"] == "flower" and started["clients"] == 2
    trained = [e for e in events if e["type"] == "client_train"]
    assert sorted((e["round"], e["client"]) for e in trained) == [(1, 0), (1, 1)]
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "completed"
    assert (tmp_path / "out" / "checkpoints" / "final.pt").is_file()


@pytest.mark.slow
def test_flower_deployment_reports_a_client_error(tmp_path):
    from tests.fl.runs import edit, only_error

    bundle = copy_bundle(tmp_path)
    edit(bundle / "api.py", "        self.model.train()\n",
         "        self.model.train()\n        raise ValueError('broken on purpose')\n")
    code, events, _ = flautim_run(bundle, "--transport", "flower", "--clients", "2", "--rounds", "1", timeout=900)
    assert code == 1
    error = only_error(events)
    assert "broken on purpose" in error["what"] and error["where"].startswith("api.py:")


def _fake_real_clientapp(tmp_path):
    real = tmp_path / "real-flwr-clientapp"
    real.write_text("#!/bin/sh\necho REAL-CLIENTAPP \"$@\"\n")
    real.chmod(0o755)
    return real


def test_warm_launcher_runs_flowers_entry_point_in_a_forked_child(tmp_path):
    import subprocess
    import sys
    import time

    from flautim.fl.transport.warm_clientapp import write_launcher

    sock = tmp_path / "w.sock"
    launcher = write_launcher(tmp_path / "bin", sock, _fake_real_clientapp(tmp_path))
    parent = subprocess.Popen([sys.executable, "-m", "flautim.fl.transport.warm_clientapp", str(sock)], stdout=subprocess.PIPE, text=True)
    try:
        assert "ready" in parent.stdout.readline()
        # Flower's own argument parser answers (not the fallback), with its exit codes.
        ok = subprocess.run([str(launcher), "--help"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and "Run a Flower ClientApp" in ok.stdout and "REAL" not in ok.stdout
        bad = subprocess.run([str(launcher), "--no-such-flag"], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "flwr-clientapp: error:" in bad.stderr
        # Several launchers at once each get their own child and their own answer.
        many = [subprocess.Popen([str(launcher), "--help"], stdout=subprocess.PIPE, text=True) for _ in range(4)]
        assert all(p.wait(timeout=60) == 0 and "Run a Flower ClientApp" in p.stdout.read() for p in many)
    finally:
        parent.kill()
        parent.wait()
    time.sleep(0.1)
    # With the warm parent gone the launcher runs the real flwr-clientapp.
    fallback = subprocess.run([str(launcher), "--token", "t"], capture_output=True, text=True, timeout=60)
    assert fallback.stdout.strip() == "REAL-CLIENTAPP --token t"
