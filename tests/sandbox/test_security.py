"""Hostile user code against the real Docker sandbox. Every attack is contained, shows up in
the experiment's logs and state, and the platform keeps serving (another run completes
meanwhile)."""

from __future__ import annotations

import http.server
import re
import socket
import threading

import pytest
from sqlalchemy import select

from flautim import storage
from flautim.models import Experiment, ExperimentState, LogRecord, ModelArtifact, db
from flautim.worker import job
from flautim.worker.queue import enqueue_experiment
from tests.worker.bundles import TINY, store_experiment, write_bundle

from . import attacks
from .conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _enqueue(app, experiment_id):
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        enqueue_experiment(experiment, app.extensions["flautim_config"])
        return experiment.attempt


def _state(app, experiment_id):
    with app.app_context():
        e = db.session.get(Experiment, experiment_id)
        return e.state, e.failure_kind, e.failure_reason


def _logs(app, experiment_id) -> list[tuple[str, str]]:
    with app.app_context():
        return [(r.source, r.line) for r in db.session.execute(
            select(LogRecord).where(LogRecord.experiment_id == experiment_id).order_by(LogRecord.id)
        ).scalars()]


def _run_all(app, experiment_ids):
    """Run several experiments at once, like several work horses."""
    attempts = {i: _enqueue(app, i) for i in experiment_ids}
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, job.run_experiment(i, attempts[i])))
               for i in experiment_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    return results


@pytest.fixture
def host_web_server():
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _host_ips() -> list[str]:
    ips = {"127.0.0.1", "172.17.0.1"}
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            ips.add(s.getsockname()[0])
    except OSError:
        pass
    return sorted(ips)


def test_network_files_processes_and_symlinks_are_contained_while_memory_bomb_runs(
    app, worker_config, owner, tmp_path, docker_client, host_web_server
):
    user_id, project_id = owner
    # Another experiment's stored file: the attacker knows its host path.
    victim_id = store_experiment(app, write_bundle(tmp_path / "victim"), project_id, user_id, "victim")
    victim_file = storage.model_code_dir(worker_config.data_path, project_id, 1) / "api.py"
    targets = [(ip, port) for ip in _host_ips() for port in (6379, 5432, host_web_server)]
    header = f"HOST_TARGETS = {targets!r}\nOTHER_EXPERIMENT_FILE = {str(victim_file)!r}\n"
    probe = header + attacks.PROBES
    dataset = probe + (TINY / "dataset.py").read_text()
    api = attacks.SYMLINK_PLANT_API_PREFIX + probe + (TINY / "api.py").read_text()
    attacker = store_experiment(app, write_bundle(tmp_path / "a", dataset=dataset, api=api),
                                project_id, user_id, "attacker")
    greedy = store_experiment(
        app, write_bundle(tmp_path / "m", api=(TINY / "api.py").read_text() + attacks.MEMORY_BOMB_API_SUFFIX),
        project_id, user_id, "greedy")

    results = _run_all(app, [attacker, greedy])

    # The probing run itself completes: its attacks simply fail.
    state, kind, reason = _state(app, attacker)
    assert state == ExperimentState.SUCCEEDED, reason
    lines = [line for _, line in _logs(app, attacker)]
    probes = [line for line in lines if line.startswith("PROBE ")]
    opened = [line for line in probes if " OPEN " in line]
    assert not opened, opened
    roles = {p.split()[1] for p in probes}
    assert {"prepare", "server", "client-0", "client-1"} <= roles
    assert any(re.match(r"PROBE \S+ connect-127\.0\.0\.1:6379 blocked", p) for p in probes)
    assert all(" uid 10001" in p for p in probes if " uid " in p)
    # A client sees only its own partition (one client's files, no sibling folders).
    listings = [p for p in probes if " data-listing " in p and p.split()[1].startswith("client-")]
    assert listings and all("client-" not in p.split("data-listing", 1)[1] for p in listings)
    # Symlinks planted in the output were refused, never followed; junk events kept as lines.
    assert sum("refused" in line for line in lines) >= 3
    with app.app_context():
        paths = [a.card.get("source_file") for a in db.session.execute(
            select(ModelArtifact).where(ModelArtifact.experiment_id == attacker)).scalars()]
    assert not {"evil.pt", "sub/link/passwd"} & set(paths)
    assert any("invalid event ignored" in line for line in lines)
    # Nothing stays behind: no container (so no leftover `sleep`), no network.
    assert leftovers(docker_client, attacker) == []
    assert victim_id  # untouched, still a draft
    assert _state(app, victim_id)[0] == ExperimentState.DRAFT

    # The memory bomb was killed by its limit and reported as such.
    state, kind, reason = _state(app, greedy)
    assert results[greedy] == "failed", reason
    assert kind == "out_of_memory", reason
    assert "memory" in reason
    assert any("memory limit" in line for src, line in _logs(app, greedy) if src == "platform")
    assert leftovers(docker_client, greedy) == []


def test_fork_bomb_disk_fill_and_print_flood_are_contained(app, worker_config, owner, tmp_path, docker_client):
    user_id, project_id = owner
    base = (TINY / "dataset.py").read_text()
    bomb = store_experiment(app, write_bundle(tmp_path / "f", dataset=attacks.FORK_BOMB + base),
                            project_id, user_id, "forkbomb")
    fill = store_experiment(app, write_bundle(tmp_path / "d", dataset=attacks.DISK_FILL + base),
                            project_id, user_id, "diskfill")
    flood = store_experiment(app, write_bundle(tmp_path / "p", dataset=attacks.PRINT_FLOOD + base),
                             project_id, user_id, "flood")

    results = _run_all(app, [bomb, fill, flood])

    state, kind, reason = _state(app, bomb)
    assert state == ExperimentState.FAILED and kind == "user_code", reason
    assert any("fork refused" in line or "Resource temporarily unavailable" in line
               for _, line in _logs(app, bomb))

    state, kind, reason = _state(app, fill)
    assert state == ExperimentState.FAILED, reason
    assert "200 MB" in reason
    assert any("tmpfs full" in line for _, line in _logs(app, fill))

    # The flood is cut at the log cap; the run itself goes on and succeeds.
    state, kind, reason = _state(app, flood)
    assert results[flood] == "succeeded", reason
    logs = _logs(app, flood)
    spam = [line for src, line in logs if src == "prepare" and line.startswith("spam")]
    assert 0 < len(spam) < 1100
    assert any("the rest of its output was not kept" in line for src, line in logs if src == "platform")
    for experiment_id in (bomb, fill, flood):
        assert leftovers(docker_client, experiment_id) == []
