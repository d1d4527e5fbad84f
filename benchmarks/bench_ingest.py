"""Ingest benchmark: what the worker spends storing a 1,000-client run's output.

    .venv/bin/python benchmarks/bench_ingest.py [--clients 1000] [--rounds 5] [--repeat 5]

Runs `flautim run --json` once on the MNIST example (N clients, fraction_fit and
fraction_evaluate 0.1 from 100 clients up, as bench_platform does), then feeds its output to
the worker's Ingestor as the Docker backend would (events from the server, the clients'
lines from their group's source) against a scratch PostgreSQL database, `--repeat` times.
Prints, per repeat and as the median: the worker's CPU (its process's, while the lines are
fed and the ingest closes), PostgreSQL's CPU over the same span (every `postgres` process on
the host), and the wall time. Figures, not assertions; the machine's other load counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from bench_platform import _bundle  # noqa: E402

from flautim.config import Config  # noqa: E402
from flautim.fl.events import EVENT_PREFIX  # noqa: E402

GROUP = 250  # clients per group source, as a 1,000-client platform run on 2 cores names them


def postgres_cpu_s() -> float:
    """CPU seconds of every process named postgres (utime + stime)."""
    hz, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")] == "postgres":
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
    return total / hz


def run_output(bundle: Path) -> list[tuple[str, str, str]]:
    """(source, stream, line) of a headless run, as the platform's capture would name them."""
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "flautim"), "run", "--json", str(bundle)],
                          capture_output=True, text=True, cwd=str(ROOT), check=True)
    # `--json` prints the events bare; a sandboxed server prints each after EVENT_PREFIX.
    items = [("server", "stdout", EVENT_PREFIX + line if line.startswith("{") else line)
             for line in proc.stdout.splitlines()]
    for line in proc.stderr.splitlines():
        if line.startswith("[client "):
            first = int(line.split()[1]) // GROUP * GROUP
            items.append((f"clients-{first}-{first + GROUP - 1}", "stderr", line))
        else:
            items.append(("server", "stderr", line))
    return items


def ingest_once(config, experiment_id: int, items, out: Path) -> dict:
    import redis

    from flautim.worker.ingest import Ingestor

    ingest = Ingestor(config, experiment_id, 1, out, redis_client=redis.Redis.from_url(config.REDIS_URL))
    pg, cpu, wall = postgres_cpu_s(), time.process_time(), time.perf_counter()
    for source, stream, text in items:
        ingest.line(source, stream, text)
    ingest.close()
    return {"worker_cpu_s": time.process_time() - cpu, "postgres_cpu_s": postgres_cpu_s() - pg,
            "wall_s": time.perf_counter() - wall, "lines": ingest.lines_stored, "events": ingest.events_stored}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="the run's output lines: read from FILE when it exists, else written to it "
                             "(to feed two trees the same lines)")
    args = parser.parse_args(argv)

    from flautim.models import Experiment, Project, User, db
    from flautim.schema_migrations import upgrade
    from flautim.web import create_app
    from flautim.web.database import engine_of
    from flautim.worker.database import use_config

    admin_url = os.environ.get("FLAUTIM_BENCH_DATABASE_URL", "postgresql+psycopg://127.0.0.1/postgres")
    redis_url = os.environ.get("FLAUTIM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    scratch = Path(tempfile.mkdtemp(prefix="flautim-bench-"))
    fraction = 0.1 if args.clients >= 100 else None
    if args.output and args.output.exists():
        items = [tuple(item) for item in json.loads(args.output.read_text())]
    else:
        items = run_output(_bundle(scratch / "mnist", args.rounds, args.clients, fraction))
        if args.output:
            args.output.write_text(json.dumps(items))
    name = f"flautim_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    results = []
    try:
        config = Config.from_env(environ={}, ENV="test", SECRET_KEY="bench", DATA_DIR=str(scratch / "data"),
                                 DATABASE_URL=url, REDIS_URL=redis_url, EMBEDDED_WORKER=False)
        app = create_app(config)
        with app.app_context():
            upgrade(engine_of(app))
            user = User(email="bench@example.org", name="bench", password_hash="x")
            project = Project(name="bench")
            db.session.add_all([user, project])
            db.session.flush()
            experiments = [Experiment(project_id=project.id, created_by_id=user.id, name=f"run {i}")
                           for i in range(args.repeat)]
            db.session.add_all(experiments)
            db.session.commit()
            ids = [e.id for e in experiments]
        use_config(config)
        for i, experiment_id in enumerate(ids):
            results.append(ingest_once(config, experiment_id, items, scratch / f"out-{i}"))
            r = results[-1]
            print(f"repeat {i + 1}: worker CPU {r['worker_cpu_s']:.2f} s, PostgreSQL CPU "
                  f"{r['postgres_cpu_s']:.2f} s, wall {r['wall_s']:.2f} s "
                  f"({r['lines']} lines, {r['events']} events)", flush=True)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
    print(f"\n{args.clients} clients, {args.rounds} rounds: {len(items)} output lines; load average "
          f"{os.getloadavg()[0]:.1f}")
    for key, label in (("worker_cpu_s", "worker CPU"), ("postgres_cpu_s", "PostgreSQL CPU"), ("wall_s", "wall")):
        values = [r[key] for r in results]
        print(f"{label:16} median {statistics.median(values):.2f} s  (runs: "
              f"{', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
