"""Shared by the run tests: copy a test bundle, edit it, run `flautim run` as a real process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

BUNDLES = Path(__file__).parent / "bundles"
# Generous: the machine's 2 cores are shared; a hang still fails the test instead of CI.
RUN_TIMEOUT_S = 400


def copy_bundle(tmp_path: Path, name: str = "tiny") -> Path:
    target = tmp_path / name
    shutil.copytree(BUNDLES / name, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def flautim_run(bundle: Path, *args: str, out: Path | None = None, timeout: float = RUN_TIMEOUT_S) -> tuple[int, list[dict], str]:
    """(exit code, events, stderr) of `flautim run BUNDLE --json ...`."""
    cmd = [sys.executable, "-m", "flautim.cli", "run", str(bundle), "--json", *args]
    if out is not None:
        cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, proc.stderr


def only_error(events: list[dict]) -> dict:
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1, f"expected one error event, got {errors}"
    finished = [e for e in events if e["type"] == "run_finished"]
    assert len(finished) == 1 and finished[0]["status"] == "failed", finished
    assert events[-1]["type"] == "run_finished"
    return errors[0]
