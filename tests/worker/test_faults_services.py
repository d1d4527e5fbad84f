"""PostgreSQL and Redis going away mid-run (issue 13 §5): the run's outcome is recorded,
nothing stays queued or running, the live view resumes.

These stop and restart the services, so they never touch the shared ones: each test module
run starts its own PostgreSQL cluster (initdb + pg_ctl, as the `postgres` user when we are
root) and its own redis-server, on free ports under a temporary folder.

FLAUTIM_TEST_PG_OUTAGE_S sets how long PostgreSQL stays down (20 s by default; the issue's
figure is for 120 s: `FLAUTIM_TEST_PG_OUTAGE_S=120 pytest tests/worker/test_faults_services.py -s`).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import select

from flautim.models import Experiment, ExperimentState, db
from flautim.worker.database import use_config
from tests.conftest import _config, _migrate, _truncate_all, free_port

from .bundles import TINY, store_experiment, write_bundle
from .test_faults_worker import _enqueue, _experiment, _wait, running_worker

pytestmark = pytest.mark.slow

OUTAGE_S = float(os.environ.get("FLAUTIM_TEST_PG_OUTAGE_S", "20"))

# Every training loop waits for a file the test creates: the run is held "mid-run" until the
# test has taken the service away.
GATED_API_SUFFIX = '''

import os as _os
import time as _time

_original = DigitsExperiment.training_loop


def _gated(self, data_loader):
    while not _os.path.exists(self.hyperparameters["release_file"]):
        _time.sleep(0.2)
    return _original(self, data_loader)


DigitsExperiment.training_loop = _gated
'''


class PrivatePostgres:
    """A PostgreSQL cluster of our own, to stop and start at will."""

    def __init__(self, root: Path) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            pytest.fail("PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin)")
        self.bin = Path(bins[-1]).parent
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{tool} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


class PrivateRedis:
    """A redis-server of our own, without persistence: a restart empties it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis_lib.Redis.from_url(self.url)
        assert _wait(lambda: _pings(client), 20), "redis-server did not start"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis_lib.RedisError:
        return False


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    root = tmp_path_factory.mktemp("services")
    # Outside pytest's private (0700) temporary folder: the server runs as `postgres`.
    pg_root = Path(tempfile.mkdtemp(prefix="flautim-test-pg-"))
    os.chmod(pg_root, 0o755)
    postgres = PrivatePostgres(pg_root / "pg")
    postgres.start()
    _migrate(postgres.url, root / "migrate")
    redis_server = PrivateRedis(root)
    redis_server.start()
    yield postgres, redis_server
    redis_server.stop()
    try:
        postgres.stop()
    except BaseException:  # noqa: BLE001 - already stopped
        pass
    shutil.rmtree(pg_root, ignore_errors=True)


@pytest.fixture
def app(services, tmp_path):
    """The app and worker on the private services (overrides the suite's shared ones)."""
    from flautim.web import create_app

    postgres, redis_server = services
    redis_lib.Redis.from_url(redis_server.url).flushdb()
    config = _config(
        postgres.url, tmp_path / "data", REDIS_URL=redis_server.url, SANDBOX_BACKEND="local",
        WORKER_HEARTBEAT_TTL_S=3, WORKER_MAINTENANCE_INTERVAL_S=2,
    )
    application = create_app(config)
    use_config(config)
    yield application
    _truncate_all(application)


def _gated_bundle(path: Path, release: Path) -> Path:
    bundle = write_bundle(path)
    (bundle / "api.py").write_text((bundle / "api.py").read_text() + GATED_API_SUFFIX)
    (bundle / "hyperparameters.py").write_text(
        (TINY / "hyperparameters.py").read_text() + f"release_file = {str(release)!r}\n"
    )
    return bundle


def _active(app) -> list[tuple[int, str]]:
    with app.app_context():
        rows = db.session.execute(select(Experiment.id, Experiment.state).where(
            Experiment.state.in_([ExperimentState.QUEUED, ExperimentState.PREPARING, ExperimentState.RUNNING])
        )).all()
        db.session.remove()
        return [(i, str(s)) for i, s in rows]


def test_postgres_stopped_mid_run_then_back_records_every_outcome(app, services, owner, tmp_path):
    postgres, _ = services
    config = app.extensions["flautim_config"]
    release = tmp_path / "release"
    user_id, project_id = owner
    first = store_experiment(app, _gated_bundle(tmp_path / "a", release), project_id, user_id, name="first")
    second = store_experiment(app, _gated_bundle(tmp_path / "b", release), project_id, user_id, name="second")
    with running_worker(config) as worker:
        _enqueue(app, first)
        assert _wait(lambda: _experiment(app, first).state == ExperimentState.RUNNING, 120)
        _enqueue(app, second)  # waits for a worker: the only one is busy

        postgres.stop()
        down_at = time.monotonic()
        release.touch()  # the first run ends while the database is away
        # A second worker starts during the outage and takes the waiting run, whose job
        # fails at once: it cannot even read the experiment.
        with running_worker(config) as late_worker:
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            postgres.start()
            back_at = time.monotonic()
            print(f"\nFIGURE PostgreSQL down {back_at - down_at:.0f} s mid-run")

            assert _wait(lambda: _experiment(app, first).state.is_terminal, 120)
            first_recorded_s = time.monotonic() - back_at
            assert _wait(lambda: _experiment(app, second).state.is_terminal, 240), _experiment(app, second).state
            second_done_s = time.monotonic() - back_at
            assert worker.is_alive() and late_worker.is_alive()

    done_first, done_second = _experiment(app, first), _experiment(app, second)
    assert done_first.state == ExperimentState.SUCCEEDED, done_first.failure_reason
    assert done_first.rounds_done == 3
    assert done_second.state == ExperimentState.SUCCEEDED, done_second.failure_reason
    assert _active(app) == []
    print(f"FIGURE first run (ended during the outage) recorded succeeded {first_recorded_s:.1f} s after "
          f"PostgreSQL was back; the run queued behind it (its job failed during the outage) "
          f"requeued and succeeded {second_done_s:.1f} s after")


def test_the_outcome_of_a_run_ending_while_the_database_is_away_does_not_wait_for_the_ingest(
    app, services, tmp_path
):
    """The ingest learns the runtime's verdict only by writing it, and gives up on what it
    could not write when the run ends; the verdict is kept as the lines arrive."""
    from flautim.fl.events import event_line, make_event
    from flautim.sandbox import RunOutcome
    from flautim.worker.ingest import Ingestor
    from flautim.worker.job import RuntimeVerdict, decide

    postgres, _ = services
    postgres.stop()
    try:
        sink = RuntimeVerdict(Ingestor(app.extensions["flautim_config"], 1, 1, tmp_path, redis_client=None))
        sink.line("server", "stdout", "[server] round 3 done")
        sink.line("server", "stdout", event_line(make_event(
            "run_finished", status="completed", duration_s=9.0, rounds_completed=3)))
        sink.close(timeout=3)
        assert decide(RunOutcome("succeeded"), sink) == (ExperimentState.SUCCEEDED, None, None)
    finally:
        postgres.start()


class Browser(threading.Thread):
    """An experiment page's live view: the real SSE stream (`live.stream`), reconnected
    like EventSource (after the stream's `retry: 1000`, from the last `id:` seen)."""

    def __init__(self, app, redis_url: str, experiment_id: int) -> None:
        super().__init__(daemon=True)
        self.app, self.redis_url, self.experiment_id = app, redis_url, experiment_id
        self.kinds: list[str] = []
        self.end: dict | None = None
        self.reconnects = 0
        self.last_id: str | None = None
        self.stop_at = time.monotonic() + 300

    def run(self) -> None:
        from flautim.web.experiments import live

        while self.end is None and time.monotonic() < self.stop_at:
            client = redis_lib.Redis.from_url(self.redis_url)
            try:
                for chunk in live.stream(self.app, client, self.experiment_id,
                                         live.Cursor.parse(self.last_id), max_seconds=60):
                    self._read(chunk)
                    if self.end is not None:
                        return
            except redis_lib.RedisError:
                pass  # the server's stream broke: the browser reconnects
            self.reconnects += 1
            time.sleep(1)

    def _read(self, chunk: str) -> None:
        for message in chunk.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in message.splitlines() if ": " in line)
            if "id" in fields:
                self.last_id = fields["id"]
            if "event" in fields:
                self.kinds.append(fields["event"])
                if fields["event"] == "end":
                    self.end = json.loads(fields["data"])


def test_redis_restarted_mid_run_the_run_finishes_and_its_live_view_resumes(app, services, owner, tmp_path):
    _, redis_server = services
    config = app.extensions["flautim_config"]
    release = tmp_path / "release"
    user_id, project_id = owner
    experiment_id = store_experiment(app, _gated_bundle(tmp_path / "a", release), project_id, user_id)
    with running_worker(config) as worker:
        _enqueue(app, experiment_id)
        assert _wait(lambda: _experiment(app, experiment_id).state == ExperimentState.RUNNING, 120)
        browser = Browser(app, redis_server.url, experiment_id)
        browser.start()
        assert _wait(lambda: "state" in browser.kinds, 30)

        redis_server.stop()  # empty when it comes back: queues, heartbeats, subscriptions
        time.sleep(3)
        redis_server.start()
        restarted_at = time.monotonic()
        seen_before = len(browser.kinds)
        release.touch()

        browser.join(240)
        live_s = time.monotonic() - restarted_at
        experiment = _experiment(app, experiment_id)
        assert experiment.state == ExperimentState.SUCCEEDED, experiment.failure_reason
        assert browser.end == {"state": "succeeded"}, (browser.end, browser.kinds[-10:])
        after = browser.kinds[seen_before:]
        assert "event" in after and "log" in after, after
        # The worker survived the restart (RQ reconnects); it serves the next run.
        assert worker.is_alive(), "the worker quit when Redis restarted"
    print(f"\nFIGURE Redis restarted mid-run: the run succeeded; the page's live stream "
          f"reconnected {browser.reconnects} time(s) and showed its rounds and the end "
          f"({browser.end}) {live_s:.1f} s after the restart; the worker lived on")
