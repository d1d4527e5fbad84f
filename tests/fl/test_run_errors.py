"""Bad input through `flautim run` on a real bundle: one clear error event, non-zero exit,
never a hang (every run here is bounded by the subprocess timeout in runs.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.fl.runs import copy_bundle, edit, flautim_run, only_error

pytestmark = pytest.mark.slow


def test_syntax_error_in_user_code(tmp_path):
    bundle = copy_bundle(tmp_path)
    edit(bundle / "api.py", "    def training_loop(self, data_loader):", "    def training_loop(self, data_loader)")
    code, events, _ = flautim_run(bundle, "--clients", "2", "--rounds", "1")
    assert code == 1
    error = only_error(events)
    assert "SyntaxError" in error["what"]
    line = next(i for i, text in enumerate((bundle / "api.py").read_text().splitlines(), 1) if "def training_loop" in text)
    assert error["where"] == f"api.py:{line}"
    assert error["kind"] == "user_code"


def test_import_the_image_lacks(tmp_path):
    bundle = copy_bundle(tmp_path)
    edit(bundle / "api.py", "import torch\n", "import torch\nimport tensorflow_not_installed_here\n")
    code, events, _ = flautim_run(bundle, "--clients", "2", "--rounds", "1")
    assert code == 1
    error = only_error(events)
    assert "tensorflow_not_installed_here" in error["what"]
    assert error["where"] == "api.py:4"
    assert error["hint"]


def test_dataset_getitem_raises(tmp_path):
    bundle = copy_bundle(tmp_path)
    edit(
        bundle / "dataset.py",
        "    def train(self):\n        return self._train",
        "    def train(self):\n        return Broken(self._train)",
    )
    (bundle / "dataset.py").write_text(
        (bundle / "dataset.py").read_text()
        + "\n\nclass Broken(torch.utils.data.Dataset):\n"
        "    def __init__(self, inner):\n        self.inner = inner\n\n"
        "    def __len__(self):\n        return len(self.inner)\n\n"
        "    def __getitem__(self, index):\n"
        "        raise KeyError(f'no sample {index}')\n"
    )
    line = (bundle / "dataset.py").read_text().splitlines().index("        raise KeyError(f'no sample {index}')") + 1
    code, events, _ = flautim_run(bundle, "--clients", "2", "--rounds", "1")
    assert code == 1
    error = only_error(events)
    assert "KeyError" in error["what"] and "no sample" in error["what"]
    assert error["where"] == f"dataset.py:{line}"


def test_model_with_the_wrong_shape(tmp_path):
    bundle = copy_bundle(tmp_path)
    edit(bundle / "api.py", "nn.Linear(64, 32)", "nn.Linear(60, 32)")
    code, events, _ = flautim_run(bundle, "--clients", "2", "--rounds", "1")
    assert code == 1
    error = only_error(events)
    assert "60" in error["what"] and "64" in error["what"]
    assert error["where"].startswith("api.py:")
    assert [e for e in events if e["type"] == "round_started"] == []  # caught before round 1


def test_client_that_raises_in_round_3(tmp_path):
    bundle = copy_bundle(tmp_path)
    edit(
        bundle / "api.py",
        "        self.model.train()\n",
        "        self.model.train()\n"
        "        if self.round == 3 and self.client_id == 1:\n"
        "            raise RuntimeError('client 1 gives up in round 3')\n",
    )
    code, events, _ = flautim_run(bundle, "--clients", "2", "--rounds", "4")
    assert code == 1
    error = only_error(events)
    assert "client 1 gives up in round 3" in error["what"]
    assert error["client"] == 1
    line = (bundle / "api.py").read_text().splitlines().index("            raise RuntimeError('client 1 gives up in round 3')") + 1
    assert error["where"] == f"api.py:{line}"
    assert "round 3" in error["what"]
    assert events[-1]["rounds_completed"] == 2
    assert "Traceback" in error.get("traceback", "")
    # Coded through the client's reply to the server, for the platform's translation.
    assert error["code"] == "user_code.training_loop_raised"
    assert error["params"] == {"round": 3, "epoch": 1, "error": "RuntimeError: client 1 gives up in round 3"}


def test_killed_client_is_reported_not_waited_on(tmp_path):
    bundle = copy_bundle(tmp_path)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    (bundle / "hyperparameters.py").write_text(
        (bundle / "hyperparameters.py").read_text() + f"pid_dir = {str(pid_dir)!r}\n"
    )
    edit(
        bundle / "api.py",
        "        self.model.train()\n",
        "        self.model.train()\n"
        "        if self.round == 2 and self.client_id == 0:\n"
        "            import os, pathlib, time\n"
        "            pathlib.Path(self.hyperparameters['pid_dir'], 'client-0').write_text(str(os.getpid()))\n"
        "            time.sleep(3600)\n",
    )
    killed = {}

    def kill_when_stuck() -> None:
        pid_file = pid_dir / "client-0"
        deadline = time.monotonic() + 350
        while time.monotonic() < deadline and not pid_file.exists():
            time.sleep(0.2)
        if pid_file.exists():
            time.sleep(0.5)
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            killed["pid"] = pid

    killer = threading.Thread(target=kill_when_stuck, daemon=True)
    killer.start()
    started = time.monotonic()
    code, events, _ = flautim_run(bundle, "--clients", "2", "--rounds", "3")
    killer.join(5)
    assert killed, "client 0 never reached round 2"
    assert code == 1
    error = only_error(events)
    assert error["client"] == 0 and "stopped" in error["what"]
    assert error["kind"] == "infrastructure"
    # Reported when the process died, not after the reply timeout (600 s here).
    assert time.monotonic() - started < 400


def test_missing_bundle_folder_is_one_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flautim.cli", "run", str(tmp_path / "nope"), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout.count('"type": "error"') == 1 and "is not a folder" in proc.stdout
