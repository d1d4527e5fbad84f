"""Saídas at 1,000 clients, in process: the experiment page and the client endpoints
(the page's JSON routes and the API's), one request at a time through Flask's test client,
for a finished run of 1,000 clients x 5 rounds stored by the worker's real Ingestor (the
clients' reports, the partition summary with 1,000 entries, the aggregates). Prints the
median and p95 time, SQL statements and bytes of each answer, and the stream's catch-up
on page open. Not a test (nothing is asserted); needs PostgreSQL and Redis as in
tests/conftest.py:

    .venv/bin/python benchmarks/measure_clients.py [--clients 1000] [--rounds 5] [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_web import PASSWORD, app_env, create_database, drop_database, percentile  # noqa: E402


def event_line(type_: str, **fields) -> str:
    from flautim.fl.events import EVENT_PREFIX, make_event

    return EVENT_PREFIX + json.dumps(make_event(type_, **fields))


def run_lines(clients: int, rounds: int):
    yield event_line("run_started", experiment="bench", transport="fast", clients=clients, rounds=rounds,
                     strategy="FedAvg", hyperparameters={"rounds": rounds})
    yield event_line("partition_summary", method="dirichlet", clients=[
        {"client": c, "train_examples": 50 + c % 7, "val_examples": 5,
         "label_counts": {str(c % 10): 50, str((c + 3) % 10): c % 7}} for c in range(clients)])
    for r in range(1, rounds + 1):
        yield event_line("round_started", round=r)
        for phase in ("client_train", "client_evaluate"):
            for c in range(clients):
                yield event_line(phase, round=r, client=c, loss=((c * 37) % 1000) / 100 / r,
                                 metrics={"accuracy": (c % 100) / 100}, examples=50 + c % 7, duration_s=0.01)
        yield event_line("aggregated", round=r, phase="train", loss=1.0 / r, metrics={"accuracy": 0.5})
        yield event_line("aggregated", round=r, phase="evaluate", loss=1.1 / r, metrics={"accuracy": 0.5})
        yield event_line("central_evaluate", round=r, loss=1.2 / r, metrics={"accuracy": 0.5})
    yield event_line("run_finished", status="completed", duration_s=10.0, rounds_completed=rounds)


def seed(database_url: str, data_dir: str, clients: int, rounds: int) -> dict:
    from sqlalchemy import text

    from flautim.config import Config
    from flautim.models import Experiment, ExperimentState, Membership, Project, Role, User, db
    from flautim.schema_migrations import upgrade
    from flautim.web import create_app
    from flautim.web.api.tokens import create_token
    from flautim.web.auth.passwords import hash_password
    from flautim.worker.ingest import Ingestor

    config = Config.from_env(environ=app_env(database_url, data_dir))
    app = create_app(config)
    with app.app_context():
        upgrade(db.engine)
        user = User(email="bench@example.org", name="Bench", password_hash=hash_password(PASSWORD))
        project = Project(name="Benchmark", description="")
        db.session.add_all([user, project])
        db.session.flush()
        db.session.add(Membership(project_id=project.id, user_id=user.id, role=Role.OWNER))
        exp = Experiment(project_id=project.id, name="clients-1000", state=ExperimentState.RUNNING, attempt=1,
                         rounds_total=rounds, summary={})
        db.session.add(exp)
        db.session.commit()
        _token, secret = create_token(user, "bench")
        info = {"project": project.id, "experiment": exp.id, "token": secret}
    started = time.perf_counter()
    ingestor = Ingestor(config, info["experiment"], 1, Path(data_dir), redis_client=None)
    for line in run_lines(clients, rounds):
        ingestor.line("server", "stdout", line)
    ingestor.close(timeout=3600)
    info["ingest_s"] = time.perf_counter() - started
    with app.app_context():
        exp = db.session.get(Experiment, info["experiment"])
        exp.state = ExperimentState.SUCCEEDED
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return info


def measure(database_url: str, data_dir: str, info: dict, repeat: int) -> list[dict]:
    from sqlalchemy import event

    from flautim.config import Config
    from flautim.models import db
    from flautim.web import create_app

    app = create_app(Config.from_env(environ=app_env(database_url, data_dir)))
    client = app.test_client()
    html = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    client.post("/auth/login", data={"csrf_token": token, "email": "bench@example.org", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {info['token']}"}
    page = f"/projects/{info['project']}/experiments/{info['experiment']}"
    api = f"/api/v1/projects/{info['project']}/experiments/{info['experiment']}"
    targets = [
        ("experiment page (HTML)", page, {}),
        ("page: clients.json (newest round, 50)", page + "/clients.json", {}),
        ("page: clients.json sorted by loss desc, offset 500", page + "/clients.json?sort=train_loss&order=desc&offset=500", {}),
        ("page: clients/summary.json (20 rounds)", page + "/clients/summary.json?limit=20", {}),
        ("page: clients/label-mix.json (100 bars)", page + "/clients/label-mix.json?bars=100&labels=10", {}),
        ("API /clients (50)", api + "/clients", bearer),
        ("API /clients sorted by loss, 200", api + "/clients?sort=train_loss&limit=200", bearer),
        ("API /clients/summary (50 rounds)", api + "/clients/summary", bearer),
        ("API /clients/label-mix", api + "/clients/label-mix", bearer),
        ("API /metrics?source=client-7&format=series", api + "/metrics?source=client-7&format=series", bearer),
    ]
    with app.app_context():
        engine = db.engine
    statements = [0]

    def count(*_args, **_kwargs):
        statements[0] += 1

    rows = []
    event.listen(engine, "before_cursor_execute", count)
    try:
        for name, url, headers in targets:
            for _ in range(5):
                client.get(url, headers=headers)
            times = []
            for _ in range(repeat):
                statements[0] = 0
                start = time.perf_counter()
                response = client.get(url, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
            rows.append({"name": name, "status": response.status_code, "median": statistics.median(times),
                         "p95": percentile(times, 95), "statements": statements[0], "bytes": len(response.data)})
        # The stream's catch-up on page open: the finished run's whole catch-up, one piece.
        times, size = [], 0
        for _ in range(max(5, repeat // 5)):
            start = time.perf_counter()
            response = client.get(page + "/stream", buffered=False)
            chunks = iter(response.response)
            next(chunks)
            size = len(next(chunks))
            times.append((time.perf_counter() - start) * 1000)
            response.close()
        rows.append({"name": "stream catch-up on page open", "status": 200, "median": statistics.median(times),
                     "p95": percentile(times, 95), "statements": None, "bytes": size})
    finally:
        event.remove(engine, "before_cursor_execute", count)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args(argv)
    name, url = create_database()
    data_dir = tempfile.mkdtemp(prefix="flautim-measure-clients-")
    try:
        info = seed(url, data_dir, args.clients, args.rounds)
        print(f"{args.clients} clients x {args.rounds} rounds ingested in {info['ingest_s']:.1f} s")
        rows = measure(url, data_dir, info, args.repeat)
        print(f"{'target':55} {'status':>6} {'median ms':>10} {'p95 ms':>8} {'SQL':>4} {'bytes':>8}")
        for row in rows:
            sql = "" if row["statements"] is None else str(row["statements"])
            print(f"{row['name']:55} {row['status']:>6} {row['median']:>10.2f} {row['p95']:>8.2f} {sql:>4} {row['bytes']:>8}")
    finally:
        drop_database(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
