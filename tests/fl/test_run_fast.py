"""`flautim run` with the default (fast) transport, end to end on a real bundle."""

from __future__ import annotations

import json

import pytest

from tests.fl.runs import copy_bundle, flautim_run


@pytest.mark.slow
def test_run_completes_and_reports_every_round(tmp_path):
    bundle = copy_bundle(tmp_path)
    code, events, stderr = flautim_run(bundle, "--clients", "3", "--rounds", "2", out=tmp_path / "out")
    assert code == 0, stderr[-3000:]
    types = [e["type"] for e in events]
    assert types[0] == "partition_summary" and types[1] == "run_started"
    assert types[-1] == "run_finished" and events[-1]["status"] == "completed"
    assert events[-1]["rounds_completed"] == 2
    assert "error" not in types
    started = events[1]
    assert started["transport"] == "fast" and started["clients"] == 3 and started["rounds"] == 2
    assert len(events[0]["clients"]) == 3
    assert types.count("round_started") == 2
    trained = [e for e in events if e["type"] == "client_train"]
    assert sorted((e["round"], e["client"]) for e in trained) == [(r, c) for r in (1, 2) for c in range(3)]
    for e in trained:
        assert e["examples"] > 0 and e["loss"] > 0 and e["duration_s"] >= 0
    evaluated = [e for e in events if e["type"] == "client_evaluate"]
    assert all("accuracy" in e["metrics"] for e in evaluated) and len(evaluated) == 6
    central = [e for e in events if e["type"] == "central_evaluate"]
    assert [e["round"] for e in central] == [0, 1, 2]
    assert central[-1]["metrics"]["accuracy"] > central[0]["metrics"]["accuracy"]  # it learned
    checkpoints = [e for e in events if e["type"] == "checkpoint"]
    assert [(e["round"], e["kind"]) for e in checkpoints if e["kind"] != "best"] == [(1, "round"), (2, "round"), (2, "final")]
    final = checkpoints[-1]
    assert final["kind"] == "final" and final["round"] == 2
    for rel in final["files"].values():
        assert (tmp_path / "out" / rel).is_file(), rel


@pytest.mark.slow
def test_separate_client_processes_as_in_docker(tmp_path):
    """`--separate-clients`: one fresh `python -m flautim.fl client` per client (the entry
    point each Docker client container runs), each given only its own partition folder."""
    bundle = copy_bundle(tmp_path)
    code, events, stderr = flautim_run(bundle, "--clients", "2", "--rounds", "1", "--separate-clients")
    assert code == 0, stderr[-3000:]
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "completed"
    assert sorted(e["client"] for e in events if e["type"] == "client_train") == [0, 1]


@pytest.mark.slow
def test_readable_output_without_json(tmp_path):
    import subprocess
    import sys

    bundle = copy_bundle(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "flautim.cli", "run", str(bundle), "--clients", "2", "--rounds", "1"],
        capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "run started: tiny (fast, 2 clients, 1 rounds, FedAvg)" in proc.stdout
    assert "round 1" in proc.stdout and "central evaluation: loss=" in proc.stdout
    assert "run completed in" in proc.stdout
    assert not any(line.startswith("{") and json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
