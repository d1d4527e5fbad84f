"""Web benchmark: gunicorn on loopback, 50 concurrent clients.

Measures p50/p95 latency of
  - the experiment page (HTML, session cookie),
  - the metrics API (JSON, bearer token; every metric row of the attempt), as rows and
    as series (`format=series`),
  - the log catch-up API (1,000 lines after a random id),
  - the experiment API (one experiment's JSON: the floor of an authenticated request),
for an experiment of 200 rounds and 100,000 log lines seeded directly in PostgreSQL; then
the event-to-browser latency: messages published on the experiment's Redis channel,
timed at their arrival in SSE clients reading the experiment's live stream; and the
stream's catch-up on page open (the log's last 2,000 lines and the attempt's events),
with the same number of viewers opening it together.

Goals: p95 < 100 ms for pages and API, < 500 ms for live updates. Prints a table; not a
test. Needs PostgreSQL and Redis as in tests/conftest.py:

    .venv/bin/python benchmarks/bench_web.py [--clients 50] [--requests 20] [--sse-clients 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("FLAUTIM_TEST_DATABASE_URL", "postgresql+psycopg://127.0.0.1/postgres")
# Not database 15 (the tests flush it) so a benchmark and a test run can share a Redis.
REDIS_URL = os.environ.get("FLAUTIM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
PASSWORD = "correct horse battery staple"
ROUNDS = 200
CLIENTS_PER_ROUND = 10
LOG_LINES = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- database ---------------------------------------------------------------------------

def create_database() -> tuple[str, str]:
    name = f"flautim_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return name, url


def drop_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"),
            {"n": name},
        )
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def app_env(database_url: str, data_dir: str) -> dict[str, str]:
    return {
        "FLAUTIM_ENV": "development",
        "FLAUTIM_SECRET_KEY": "bench-secret",
        "FLAUTIM_DATABASE_URL": database_url,
        "FLAUTIM_REDIS_URL": REDIS_URL,
        "FLAUTIM_DATA_DIR": data_dir,
        "FLAUTIM_EMBEDDED_WORKER": "0",
        # Pages and the API only: no run starts, so no sandbox (and no Docker probe) needed.
        "FLAUTIM_SANDBOX_BACKEND": "local",
        # One login for the whole run; the limits are not what is measured.
        "FLAUTIM_LOGIN_LIMIT_PER_IP": "10000 per minute",
        "FLAUTIM_LOGIN_LIMIT_PER_ACCOUNT": "10000 per minute",
        # One user plays every stream viewer (20 and more at once).
        "FLAUTIM_STREAMS_PER_USER": "10000",
    }


def seed(database_url: str, data_dir: str) -> dict:
    """Migrate, then seed one user, project, token and a finished 200-round experiment."""

    from flautim.config import Config
    from flautim.models import (
        Experiment,
        ExperimentEvent,
        ExperimentState,
        LogRecord,
        Membership,
        MetricRow,
        Project,
        Role,
        User,
        db,
    )
    from flautim.schema_migrations import upgrade
    from flautim.web import create_app
    from flautim.web.api.tokens import create_token
    from flautim.web.auth.passwords import hash_password

    env = app_env(database_url, data_dir)
    config = Config.from_env(environ=env)
    app = create_app(config)
    with app.app_context():
        upgrade(db.engine)
        user = User(email="bench@example.org", name="Bench", password_hash=hash_password(PASSWORD))
        project = Project(name="Benchmark", description="")
        db.session.add_all([user, project])
        db.session.flush()
        db.session.add(Membership(project_id=project.id, user_id=user.id, role=Role.OWNER))
        exp = Experiment(
            project_id=project.id, name="mnist-200", state=ExperimentState.RUNNING, attempt=1,
            rounds_total=ROUNDS, rounds_done=ROUNDS, summary={"accuracy": 0.97, "loss": 0.1},
            # What the worker's ingest keeps as it stores the lines seeded below.
            log_sources=[f"client-{c}" for c in range(CLIENTS_PER_ROUND)],
        )
        db.session.add(exp)
        db.session.commit()
        _token, secret = create_token(user, "bench")

        metrics, events = [], []
        for r in range(1, ROUNDS + 1):
            for phase in ("train", "evaluate"):
                for source in ["aggregate"] + [f"client-{c}" for c in range(CLIENTS_PER_ROUND)]:
                    for name in ("loss", "accuracy"):
                        metrics.append(dict(experiment_id=exp.id, attempt=1, round=r, phase=phase,
                                            source=source, name=name, value=random.random()))
            for name in ("loss", "accuracy"):
                metrics.append(dict(experiment_id=exp.id, attempt=1, round=r, phase="central",
                                    source="server", name=name, value=random.random()))
            events.append(dict(experiment_id=exp.id, attempt=1, type="round_started", payload={"round": r}))
            events.append(dict(experiment_id=exp.id, attempt=1, type="central_evaluate",
                               payload={"round": r, "loss": 0.1, "metrics": {"accuracy": 0.9}}))
        db.session.execute(sa.insert(MetricRow), metrics)
        db.session.execute(sa.insert(ExperimentEvent), events)
        # What the worker's ingest keeps as it stores those rows.
        exp.metrics_version = db.session.scalar(sa.select(sa.func.max(MetricRow.id)).where(MetricRow.experiment_id == exp.id))
        batch = []
        for i in range(LOG_LINES):
            batch.append(dict(experiment_id=exp.id, attempt=1, source=f"client-{i % CLIENTS_PER_ROUND}",
                              stream="stdout", line=f"[round {i // 500}] step {i} loss=0.{i % 997:03d}"))
            if len(batch) == 10_000:
                db.session.execute(sa.insert(LogRecord), batch)
                batch = []
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        first_log, last_log = db.session.execute(
            sa.select(sa.func.min(LogRecord.id), sa.func.max(LogRecord.id)).where(LogRecord.experiment_id == exp.id)
        ).one()
        info = {"project": project.id, "experiment": exp.id, "token": secret,
                "first_log": first_log, "last_log": last_log, "metrics": len(metrics)}
        db.session.remove()
        db.engine.dispose()
    return info


# --- one request at a time, in process: cost and SQL statements per request -------------

def profile(database_url: str, data_dir: str, info: dict, repeat: int = 60) -> list[dict]:
    """Each target alone (no concurrency, no network): median time and SQL statements,
    so a slow row in the concurrent table can be told apart from queueing (and N+1 spotted)."""
    from sqlalchemy import event

    from flautim.config import Config
    from flautim.models import db
    from flautim.web import create_app
    from flautim.web.response_cache import EXTENSION

    app = create_app(Config.from_env(environ=app_env(database_url, data_dir)))
    client = app.test_client()
    html = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    client.post("/auth/login", data={"csrf_token": token, "email": "bench@example.org", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {info['token']}"}
    api = f"/api/v1/projects/{info['project']}/experiments/{info['experiment']}"
    logs = api + f"/logs?after={info['first_log'] + 50_000}&limit=1000"
    # (name, url, headers, whether the response cache is emptied before each request)
    targets = [
        ("experiment page (HTML)", f"/projects/{info['project']}/experiments/{info['experiment']}", {}, False),
        ("metrics API", api + "/metrics", bearer, False),
        ("log catch-up API (1000 lines)", logs, bearer, False),
        ("log catch-up API, nothing kept yet", logs, bearer, True),
        ("experiment API (show)", api, bearer, False),
        ("/healthz (the framework's floor)", "/healthz", {}, False),
    ]
    rows = []
    with app.app_context():
        engine = db.engine
    statements = [0]

    def count(*_args, **_kwargs):
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        cache = app.extensions[EXTENSION]
        for name, url, headers, cold in targets:
            times, sizes, status = [], [], None
            for _ in range(5):  # warm up: caches, prepared statements
                client.get(url, headers=headers)
            for _ in range(repeat):
                if cold:
                    cache.clear()
                statements[0] = 0
                start = time.perf_counter()
                response = client.get(url, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                sizes.append(len(response.data))
                status = response.status_code
            rows.append({"name": name, "status": status, "median": statistics.median(times),
                         "statements": statements[0], "bytes": sizes[-1]})
    finally:
        event.remove(engine, "before_cursor_execute", count)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return rows


# --- server -----------------------------------------------------------------------------

def start_gunicorn(env: dict[str, str], port: int, workers: int, threads: int,
                   worker_class: str = "gthread") -> subprocess.Popen:
    cmd = [str(ROOT / ".venv" / "bin" / "gunicorn"), "-k", worker_class, "-w", str(workers),
           "-b", f"127.0.0.1:{port}", "--timeout", "120", "--log-level", "warning"]
    if worker_class == "gthread":
        # Clients wait at a barrier after opening their connection; the default 2 s
        # keep-alive would close it under them (a reset, not a server failure).
        cmd += ["--threads", str(threads), "--keep-alive", "75"]
    cmd.append("wsgi:app")
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def session_cookie(base: str) -> dict[str, str]:
    """Log in once through the real form (CSRF included) and reuse the cookie everywhere."""
    s = requests.Session()
    html = s.get(base + "/auth/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    r = s.post(base + "/auth/login", data={"csrf_token": token, "email": "bench@example.org",
                                             "password": PASSWORD}, allow_redirects=False)
    if r.status_code not in (302, 303):
        raise SystemExit(f"login failed: {r.status_code}")
    return s.cookies.get_dict()


# --- load -------------------------------------------------------------------------------

def hammer(name: str, clients: int, per_client: int, make_request) -> dict:
    """`clients` threads, each with its own connection, each doing `per_client` requests."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def worker(i: int) -> None:
        session = requests.Session()
        make_request(session, warmup=True)  # open the keep-alive connection first
        barrier.wait()
        mine = []
        for _ in range(per_client):
            start = time.perf_counter()
            try:
                response = make_request(session, warmup=False)
                status = str(response.status_code)
            except requests.RequestException as exc:
                status = type(exc).__name__
            mine.append((time.perf_counter() - start) * 1000)
            if status != "200":
                with lock:
                    errors.append(status)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        counts = {code: errors.count(code) for code in set(errors)}
        print(f"  {name}: non-200 answers {counts}", flush=True)
    return {
        "name": name, "n": len(latencies), "errors": len(errors),
        "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
        "max": max(latencies), "rps": len(latencies) / wall,
    }


WRK_SCRIPT = """
local headers = %(headers)s
local paths = %(paths)s
local cursors = %(cursors)s
for k, v in pairs(headers) do wrk.headers[k] = v end
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("seed", threads)
end
init = function(args)
  math.randomseed(os.time() * 100 + seed)  -- each thread its own cursors
end
request = function()
  local path = paths[math.random(#paths)]
  if cursors[1] then
    path = (string.gsub(path, "{after}", tostring(math.random(cursors[1], cursors[2]))))
  end
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"n": %%d, "errors": %%d, "p50": %%f, "p95": %%f, "max": %%f, "seconds": %%f}\\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency.max / 1000,
    summary.duration / 1e6))
end
"""


def _lua(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    return json.dumps(str(value))  # a JSON string is a valid Lua string literal here


def wrk_hammer(name: str, base: str, paths: list[str], headers: dict[str, str], clients: int,
               seconds: int, tmp: str, cursors: tuple[int, int] | None = None) -> dict:
    """The same load from wrk (C, epoll; 2 threads): `clients` connections, each sending its
    next request when the last answer arrived, for `seconds` (kept alive by gthread; sync
    workers close each after its answer, and wrk reconnects: a TCP handshake per request,
    counted in the latency). The Python
    harness's 50 threads share one GIL with their own timing; wrk's do not, and use a
    fraction of the CPU the server needs."""
    script = Path(tmp) / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    # With `cursors` (lo, hi), each request's path has "{after}" replaced by a random id.
    script.write_text(WRK_SCRIPT % {"headers": _lua(headers), "paths": _lua(paths),
                                    "cursors": "{" + ", ".join(map(str, cursors or ())) + "}"})
    out = subprocess.run(["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds}s", "--timeout", "10s",
                          "-s", str(script), base], capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line[4:])
    return {"name": name, "n": r["n"], "errors": r["errors"], "p50": r["p50"], "p95": r["p95"],
            "max": r["max"], "rps": r["n"] / r["seconds"]}


def median_run(runs: list[dict]) -> dict:
    """The run with the median req/s, and (with more than one) every run's req/s and p95."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        chosen["runs"] = "  runs: " + ", ".join(f"{r['rps']:.0f}/{r['p95']:.0f}" for r in runs)
    return chosen


def stream_catch_up(base: str, cookies: dict, info: dict, clients: int, opens: int) -> dict:
    """The page's first open of its stream (no Last-Event-ID): the log's tail (2,000 lines)
    and every event of the attempt, then the state. `clients` viewers open it together,
    `opens` times each, one after the other; the time is from the request to the state."""
    url = f"{base}/projects/{info['project']}/experiments/{info['experiment']}/stream"
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def viewer() -> None:
        session = requests.Session()
        start.wait()
        for _ in range(opens):
            began = time.perf_counter()
            with session.get(url, cookies=cookies, stream=True, timeout=120,
                             headers={"Accept": "text/event-stream"}) as response:
                for raw in response.iter_lines(decode_unicode=True):
                    if raw == "event: state":
                        with lock:
                            times.append((time.perf_counter() - began) * 1000)
                        break
                else:
                    with lock:
                        errors[0] += 1

    threads = [threading.Thread(target=viewer, daemon=True) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return {"name": f"stream catch-up on page open ({clients} viewers)", "n": len(times), "errors": errors[0],
            "p50": percentile(times, 50), "p95": percentile(times, 95),
            "max": max(times) if times else float("nan"), "rps": len(times) / (time.perf_counter() - began)}


def sse_latency(base: str, cookies: dict, info: dict, redis_url: str, clients: int, messages: int) -> dict:
    """Publish `messages` log rows on the channel; time their arrival at `clients` SSE readers."""
    import redis

    url = f"{base}/projects/{info['project']}/experiments/{info['experiment']}/stream"
    arrivals: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    done = threading.Event()
    next_id = info["last_log"] + 1

    def reader() -> None:
        session = requests.Session()
        # Resume at the newest row: this measures live delivery, not the catch-up.
        headers = {"Last-Event-ID": f"{info['last_log']}-999999999", "Accept": "text/event-stream"}
        with session.get(url, cookies=cookies, headers=headers, stream=True, timeout=120) as response:
            ready.wait()
            got = 0
            for raw in response.iter_lines(decode_unicode=True):
                if raw and raw.startswith("data: "):
                    data = json.loads(raw[6:])
                    if data.get("kind") == "log" and "sent_at" in data:
                        with lock:
                            arrivals.append((time.time() - data["sent_at"]) * 1000)
                        got += 1
                        if got >= messages:
                            break
                if done.is_set():
                    break

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    ready.wait(60)
    time.sleep(1.0)  # every reader has caught up and is following the channel
    r = redis.Redis.from_url(redis_url)
    from flautim.live_messages import channel_for

    channel = channel_for(r, info["experiment"])
    for i in range(messages):
        r.publish(channel, json.dumps({"kind": "log", "id": next_id + i, "attempt": 1, "source": "server",
                                       "stream": "stdout", "line": f"live {i}", "sent_at": time.time()}))
        time.sleep(0.05)
    deadline = time.monotonic() + 30
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    done.set()
    expected = clients * messages
    return {"name": f"SSE event->browser ({clients} clients)", "n": len(arrivals), "errors": expected - len(arrivals),
            "p50": percentile(arrivals, 50), "p95": percentile(arrivals, 95),
            "max": max(arrivals) if arrivals else float("nan"), "rps": float("nan")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="requests per client per target")
    parser.add_argument("--sse-clients", type=int, default=20)
    parser.add_argument("--sse-messages", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync",
                        help="the pages-and-API pool's gunicorn workers: sync (the README's; one request "
                             "per process, each answer closes its connection) or gthread (keep-alive)")
    parser.add_argument("--threads", type=int, default=1,
                        help="with gthread: threads per worker; keep it within the SQLAlchemy pool "
                             "(5 + 10 overflow). The stream pool is separate")
    parser.add_argument("--load", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python",
                        help="the load generator: wrk (Debian's package; default when installed) or Python threads")
    parser.add_argument("--seconds", type=int, default=10, help="with wrk: seconds per target")
    parser.add_argument("--warmup", type=int, default=2, help="with wrk: seconds of load on each target, "
                        "not measured, before the measured runs")
    parser.add_argument("--repeat", type=int, default=1,
                        help="with wrk: measure every target this many times, in turn, and report each "
                             "target's median run by req/s (the other runs' req/s beside it): a shared "
                             "machine's neighbours can halve one run")
    parser.add_argument("--profile-only", action="store_true",
                        help="only the in-process, one-at-a-time table (no gunicorn)")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    db_name, database_url = create_database()
    data_dir = tempfile.mkdtemp(prefix="flautim-bench-")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    proc = None
    try:
        t0 = time.perf_counter()
        info = seed(database_url, data_dir)
        print(f"seeded {info['metrics']} metric rows, {LOG_LINES} log lines, {ROUNDS} rounds "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
        alone = profile(database_url, data_dir, info)
        if args.profile_only:
            for r in alone:
                print(f"{r['name']:44} {r['status']:>6} {r['median']:>10.1f} ms {r['statements']:>4} SQL "
                      f"{r['bytes']:>9} bytes")
            return 0
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_gunicorn(app_env(database_url, data_dir), port, args.workers, args.threads,
                              args.worker_class)
        cookies = session_cookie(base)
        api = f"{base}/api/v1/projects/{info['project']}/experiments/{info['experiment']}"
        bearer = {"Authorization": f"Bearer {info['token']}"}
        page_url = f"{base}/projects/{info['project']}/experiments/{info['experiment']}"

        def page(session, warmup):
            return session.get(page_url, cookies=cookies)

        def metrics(session, warmup):
            return session.get(api + "/metrics", headers=bearer)

        def series(session, warmup):
            return session.get(api + "/metrics?format=series", headers=bearer)

        def logs(session, warmup):
            after = random.randint(info["first_log"], info["last_log"] - 1000)
            return session.get(api + f"/logs?after={after}&limit=1000", headers=bearer)

        def show(session, warmup):
            return session.get(api, headers=bearer)

        if args.load == "wrk":
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
            path = api.removeprefix(base)
            # Each request a random cursor: 99,000 different pages, none favoured.
            cursors = (info["first_log"], info["last_log"] - 1000)
            targets = [
                ("experiment page (HTML)", [page_url.removeprefix(base)], {"Cookie": cookie}, None),
                (f"metrics API ({info['metrics']} rows)", [path + "/metrics"], bearer, None),
                ("metrics API, format=series", [path + "/metrics?format=series"], bearer, None),
                ("log catch-up API (1000 lines)", [path + "/logs?after={after}&limit=1000"], bearer, cursors),
                ("experiment API (show)", [path], bearer, None),
                ("/healthz (the server's floor)", ["/healthz"], {}, None),
            ]
            # As a browser (and `requests`, so the CLI) asks: wrk alone would not.
            accept = {"Accept-Encoding": "gzip, deflate"}
            runs: dict[str, list[dict]] = {name: [] for name, *_rest in targets}
            if args.warmup:
                # A server that has run a while has its per-process caches full (the log
                # blocks, the metrics bodies); what filling them costs is the in-process
                # table's "nothing kept yet" row.
                for name, paths, headers, cursor_range in targets:
                    wrk_hammer(name, base, paths, {**headers, **accept}, args.clients, args.warmup, data_dir,
                               cursor_range)
            for _round in range(args.repeat):  # in turn, so a slow spell hits every target alike
                for name, paths, headers, cursor_range in targets:
                    runs[name].append(wrk_hammer(name, base, paths, {**headers, **accept}, args.clients,
                                                 args.seconds, data_dir, cursor_range))
            results = [median_run(r) for r in runs.values()]
        else:
            results = [
                hammer("experiment page (HTML)", args.clients, args.requests, page),
                hammer(f"metrics API ({info['metrics']} rows)", args.clients, args.requests, metrics),
                hammer("metrics API, format=series", args.clients, args.requests, series),
                hammer("log catch-up API (1000 lines)", args.clients, args.requests, logs),
                hammer("experiment API (show)", args.clients, args.requests, show),
            ]
        # Each open SSE stream holds a gthread thread (it gives its DB connection back), so
        # the live phase gets a server with a thread per viewer. The catch-up's viewers
        # close theirs after the state, but the server finds out only at its next write
        # (a ping): a thread per open, so none waits for one.
        stop(proc)
        opens = 5
        proc = start_gunicorn(app_env(database_url, data_dir), port, 1, args.sse_clients * (opens + 1) + 4)
        results.append(sse_latency(base, cookies, info, REDIS_URL, args.sse_clients, args.sse_messages))
        results.append(stream_catch_up(base, cookies, info, args.sse_clients, opens))
    finally:
        if proc is not None:
            stop(proc)
        drop_database(db_name)

    # The page's stream catch-up has no goal of its own in the issue: shown, not judged.
    goals = {"SSE": 500.0, "stream catch-up": None}
    print()
    pool = (f"gthread, {args.workers} workers x {args.threads} threads" if args.worker_class == "gthread"
            else f"sync, {args.workers} workers")
    print(f"gunicorn {pool}, {args.clients} concurrent clients "
          f"(load from {'wrk' if args.load == 'wrk' else 'Python threads'}), "
          f"{os.cpu_count()} CPUs shared with the load generator; load average before/after: "
          f"{load_before:.1f} / {os.getloadavg()[0]:.1f}")
    if args.repeat > 1:
        print(f"each row: the median of {args.repeat} runs by req/s; 'runs' gives every run's req/s / p95 ms")
    print(f"{'target':44} {'n':>6} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'req/s':>7}  goal")
    for r in results:
        goal = next((v for k, v in goals.items() if r["name"].startswith(k)), 100.0)
        verdict = "-" if goal is None else "ok" if r["p95"] < goal else f"MISSED (<{goal:.0f} ms)"
        print(f"{r['name']:44} {r['n']:>6} {r['errors']:>4} {r['p50']:>8.1f} {r['p95']:>8.1f} "
              f"{r['max']:>8.1f} {r['rps']:>7.1f}  {verdict}{r.get('runs', '')}")
    print()
    print("one request at a time, in process (no network, no concurrency):")
    print(f"{'target':44} {'status':>6} {'median ms':>10} {'SQL stmts':>10} {'bytes':>9}")
    for r in alone:
        print(f"{r['name']:44} {r['status']:>6} {r['median']:>10.1f} {r['statements']:>10} {r['bytes']:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
