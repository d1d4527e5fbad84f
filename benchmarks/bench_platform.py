"""Platform benchmark: the MNIST example through the whole platform (queue → worker →
Docker sandbox → ingest) against `flautim run` on the same machine. Prints a table.

    .venv/bin/python benchmarks/bench_platform.py [--rounds N] [--clients N] [--fraction-fit F]
        [--min-clients-wait-s S] [--skip-local]

Needs Docker, the sandbox image (sandbox_images/build cpu), Redis (FLAUTIM_BENCH_REDIS_URL,
default redis://127.0.0.1:6379/14) and PostgreSQL (FLAUTIM_BENCH_DATABASE_URL, an admin URL;
a scratch database is created and dropped). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from flautim.config import Config  # noqa: E402
from flautim.sandbox.container_spec import LABEL_EXPERIMENT  # noqa: E402

EXAMPLE = ROOT / "examples" / "mnist"
GIB = 2**30


def _bundle(dest: Path, rounds: int | None, clients: int | None = None, fraction_fit: float | None = None,
            min_clients_wait_s: float | None = None) -> Path:
    shutil.copytree(EXAMPLE, dest)
    (dest / "data").mkdir(exist_ok=True)
    hp = (dest / "hyperparameters.py").read_text()
    overrides = (("rounds", rounds), ("num_clients", clients), ("fraction_fit", fraction_fit),
                 ("fraction_evaluate", fraction_fit), ("min_clients_wait_s", min_clients_wait_s))
    for key, value in overrides:
        if value is not None:
            hp, found = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", hp)
            hp += "" if found else f"\n{key} = {value}\n"
    (dest / "hyperparameters.py").write_text(hp)
    return dest


class MemorySampler:
    """Samples each sandbox container's memory from its cgroup (cgroup v1 or v2)."""

    def __init__(self, docker_client, experiment_id: int):
        self.client = docker_client
        self.experiment_id = experiment_id
        self.samples: dict[str, list[int]] = {}
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self, cid: str) -> tuple[int | None, int | None]:
        for usage, peak in (
            (f"/sys/fs/cgroup/memory/docker/{cid}/memory.usage_in_bytes",
             f"/sys/fs/cgroup/memory/docker/{cid}/memory.max_usage_in_bytes"),
            (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.current",
             f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.peak"),
        ):
            try:
                u = int(Path(usage).read_text())
            except OSError:
                continue
            try:
                p = int(Path(peak).read_text())
            except OSError:
                p = None
            return u, p
        return None, None

    def _loop(self):
        prefix = f"flautim-e{self.experiment_id}-"
        while not self._stop.is_set():
            try:
                # Claimed warm-pool containers carry no run labels: match runs by name
                # (container_name gives every run's container this prefix).
                containers = [c for c in self.client.containers.list() if c.name.startswith(prefix)]
            except Exception:  # noqa: BLE001
                containers = []
            for c in containers:
                role = c.name.split("-", 3)[3]
                usage, peak = self._read(c.id)
                if usage is not None:
                    self.samples.setdefault(role, []).append(usage)
                    self.peaks[role] = max(self.peaks.get(role, 0), peak or usage, usage)
            time.sleep(0.5)

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=5)


def run_platform(app, bundle: Path, docker_client) -> dict:
    from flautim.models import Experiment, ExperimentEvent, Project, User, db
    from flautim.worker import job
    from flautim.worker.queue import enqueue_experiment
    from tests.worker.bundles import store_experiment

    with app.app_context():
        user = User(email=f"bench-{uuid.uuid4().hex[:6]}@example.com", name="bench", password_hash="x")
        db.session.add(user)
        db.session.flush()
        project = Project(name="bench", owner_id=user.id) if hasattr(Project, "owner_id") else Project(name="bench")
        db.session.add(project)
        db.session.commit()
        user_id, project_id = user.id, project.id
    experiment_id = store_experiment(app, bundle, project_id, user_id, "mnist")
    sampler = MemorySampler(docker_client, experiment_id)
    sampler.start()
    submitted = time.time()
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        enqueue_experiment(experiment, app.extensions["flautim_config"])
        attempt = experiment.attempt
    state = job.run_experiment(experiment_id, attempt)
    finished = time.time()
    sampler.stop()
    created = docker_client.events(since=int(submitted) - 1, until=int(time.time()) + 1, decode=True, filters={
        "type": "container", "event": "create", "label": f"{LABEL_EXPERIMENT}={experiment_id}"})
    with app.app_context():
        first_round = db.session.execute(
            select(ExperimentEvent.payload).where(
                ExperimentEvent.experiment_id == experiment_id, ExperimentEvent.type == "round_started"
            ).order_by(ExperimentEvent.id)
        ).scalars().first()
        run_finished = db.session.execute(
            select(ExperimentEvent.payload).where(
                ExperimentEvent.experiment_id == experiment_id, ExperimentEvent.type == "run_finished"
            ).order_by(ExperimentEvent.id.desc())
        ).scalars().first()
        experiment = db.session.get(Experiment, experiment_id)
        summary = dict(experiment.summary or {})
        final_at = experiment.finished_at.timestamp() if experiment.finished_at else None
        reason = experiment.failure_reason
    # client-<i>, or clients-<a>-<b> for a container hosting a group (virtual clients).
    clients = {r: v for r, v in sampler.samples.items() if r.startswith("client")}
    idle = [min(v) for v in clients.values() if v]
    peaks = [sampler.peaks[r] for r in clients]
    return {
        "state": state,
        "reason": reason,
        # When the state became final (what a user sees), and when the job returned (after
        # it also refilled the warm pool).
        "wall_s": (final_at or finished) - submitted,
        "job_s": finished - submitted,
        "server_done_s": (run_finished["ts"] - submitted) if run_finished else None,
        "to_clients_connected_s": (first_round["ts"] - submitted) if first_round else None,
        "clients_started_s": summary.get("clients_started_s"),
        # The run's headline metric as the worker keeps it (flautim.headline).
        "headline": (summary.get("metric"), summary.get("metric_value")),
        "idle_client_mib": (sum(idle) / len(idle) / 2**20) if idle else None,
        "peak_client_mib": (max(peaks) / 2**20) if peaks else None,
        "sum_peaks_gib": sum(sampler.peaks.values()) / GIB if sampler.peaks else None,
        "containers_sampled": len(sampler.peaks),
        "containers_created": len(list(created)),
    }


def fill_pool(config: Config, client, timeout_s: float = 300) -> float:
    """Start the warm pool and wait until every container has imported; returns seconds."""
    from flautim.sandbox.warm_pool import WarmPool

    pool = WarmPool(config, client)
    began = time.time()
    pool.refill()
    while time.time() - began < timeout_s:
        ready, idle = pool.ready()
        if ready >= pool.size:
            break
        time.sleep(0.5)
    waited = time.time() - began
    time.sleep(2)  # let the imports' page-cache writes and the load settle
    return waited


def _median_run(runs: list[dict]) -> dict:
    """The run of median wall time, with every run's wall time beside it."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    return ordered[(len(ordered) - 1) // 2] | {"all_wall_s": [r["wall_s"] for r in runs]}


def run_local(bundle: Path) -> dict:
    """`flautim run` on the same bundle, with the same marks as the platform run (from its
    `--json` event stream): round 1's start and the server's last event."""
    started = time.time()
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "flautim"), "run", "--json", str(bundle)],
                          capture_output=True, text=True, cwd=str(ROOT))
    wall = time.time() - started
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    first = next((e["ts"] for e in events if e.get("type") == "round_started"), None)
    last = next((e["ts"] for e in reversed(events) if e.get("type") == "run_finished"), None)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return {"rc": proc.returncode, "wall_s": wall, "tail": tail,
            "to_clients_connected_s": first - started if first else None,
            "server_done_s": last - started if last else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=None, help="override the example's rounds")
    parser.add_argument("--clients", type=int, default=None, help="override the example's num_clients")
    parser.add_argument("--fraction-fit", type=float, default=None, help="override fraction_fit (and fraction_evaluate)")
    parser.add_argument("--min-clients-wait-s", type=float, default=None,
                        help="override min_clients_wait_s (how long the server waits for every client)")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--server-cpus", type=float, default=0.0,
                        help="the server container's CPU quota (FLAUTIM_SANDBOX_SERVER_CPUS; 0: the host's cores)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the table shows the median")
    parser.add_argument("--warm-pool", type=int, default=0, metavar="N",
                        help="fill a warm pool of N containers (and wait until all have imported) before submitting")
    args = parser.parse_args(argv)

    import docker

    from flautim.schema_migrations import upgrade
    from flautim.web import create_app
    from flautim.web.database import engine_of
    from flautim.worker.database import use_config

    admin_url = os.environ.get("FLAUTIM_BENCH_DATABASE_URL", "postgresql+psycopg://127.0.0.1/postgres")
    redis_url = os.environ.get("FLAUTIM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    scratch = Path(tempfile.mkdtemp(prefix="flautim-bench-"))
    name = f"flautim_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        config = Config.from_env(environ={}, ENV="test", SECRET_KEY="bench", DATA_DIR=str(scratch / "data"),
                                 DATABASE_URL=url, REDIS_URL=redis_url, EMBEDDED_WORKER=False,
                                 SANDBOX_BACKEND="docker", SANDBOX_GPUS="", SANDBOX_WARM_POOL=args.warm_pool,
                                 SANDBOX_SERVER_CPUS=args.server_cpus)
        app = create_app(config)
        with app.app_context():
            upgrade(engine_of(app))
            # Container names carry the experiment id: start far from the ids tests use on
            # this host, so a test's flautim-e1-a1-* never collides with the benchmark's.
            db_engine = sa.create_engine(url)
            with db_engine.begin() as conn:
                conn.execute(sa.text(f"ALTER SEQUENCE experiments_id_seq RESTART WITH {uuid.uuid4().int % 900_000 + 100_000}"))
            db_engine.dispose()
        use_config(config)
        shape = (args.rounds, args.clients, args.fraction_fit, args.min_clients_wait_s)
        bundle = _bundle(scratch / "mnist", *shape)
        client = docker.from_env(timeout=120)
        local_bundle = None if args.skip_local else _bundle(scratch / "mnist-local", *shape)
        runs, locals_ = [], []
        for _ in range(args.repeat):
            pool_wait = fill_pool(config, client) if args.warm_pool else None
            if local_bundle is not None:
                # Before the platform run: its job's end refills the pool, whose imports
                # would load the CPUs under `flautim run`.
                locals_.append(run_local(local_bundle))
            runs.append(run_platform(app, bundle, client) | {"pool_wait_s": pool_wait})
        platform = _median_run(runs)
        local = _median_run(locals_) if locals_ else None
    finally:
        try:
            from flautim.models import db

            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        except Exception:  # noqa: BLE001
            pass
        if args.warm_pool:
            from flautim.sandbox.warm_pool import WarmPool

            WarmPool(config, docker.from_env()).drain()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(scratch, ignore_errors=True)

    def _spread(run: dict) -> str:
        walls = run["all_wall_s"]
        return f" (median of {', '.join(f'{w:.2f}' for w in walls)})" if len(walls) > 1 else ""

    def fmt(v, unit=""):
        return "-" if v is None else (f"{v:.2f}{unit}" if isinstance(v, float) else f"{v}{unit}")

    rows = [
        ("MNIST via platform (Docker): state", platform["state"]),
        ("  warm pool", f"{args.warm_pool} containers, filled in {fmt(platform['pool_wait_s'], ' s')} before submitting"
         if args.warm_pool else "off (every container starts cold)"),
        ("  submit -> finished (state final)", fmt(platform["wall_s"], " s") + _spread(platform)),
        ("  submit -> job returned (pool refilled)", fmt(platform["job_s"], " s")),
        ("  submit -> all clients connected (first round)", fmt(platform["to_clients_connected_s"], " s")),
        ("  submit -> the server's last event (run_finished)", fmt(platform["server_done_s"], " s")),
        ("  federation start -> all client containers running", fmt(platform["clients_started_s"], " s")),
        (f"  final {platform['headline'][0] or 'headline metric'}", fmt(platform["headline"][1])),
        ("  containers created (prepare, server, clients)", fmt(platform["containers_created"])),
        ("  client container memory, idle (mean of minima)", fmt(platform["idle_client_mib"], " MiB")),
        ("  client container memory, peak (max)", fmt(platform["peak_client_mib"], " MiB")),
        ("  all containers' peaks summed", fmt(platform["sum_peaks_gib"], " GiB")),
        ("  fits in 8 GiB", "yes" if (platform["sum_peaks_gib"] or 99) < 8 else "NO"),
    ]
    if platform["reason"]:
        rows.append(("  failure reason", platform["reason"][:80]))
    if local:
        rows += [
            ("flautim run (same machine): exit code", local["rc"]),
            ("  wall time", fmt(local["wall_s"], " s") + _spread(local)),
            ("  start -> all clients connected (first round)", fmt(local["to_clients_connected_s"], " s")),
            ("  start -> the server's last event (run_finished)", fmt(local["server_done_s"], " s")),
            ("platform / flautim run", fmt(platform["wall_s"] / local["wall_s"], "x")),
        ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure'.ljust(width)}  value")
    print("-" * (width + 20))
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
