"""The log catch-up API's pages from kept blocks (flautim.web.api.log_pages): the same bytes
as reading the page straight from the database, whatever the cursor, limit and source; a
log that grows shows its new lines; kept blocks are not read again."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import event, insert

from flautim.web.api.log_pages import BLOCK_LINES

from .conftest import bearer


@pytest.fixture
def team(make_user, make_project, make_token):
    owner = make_user("dona@example.org")
    return {"project": make_project("Projeto", owner), "owner": bearer(make_token(owner))}


@pytest.fixture
def long_log(app, team, seed_experiment):
    """An experiment with 3.5 blocks of lines from three sources, written in batches
    interleaved with another experiment's, so its ids have gaps as under real load."""
    from flautim.models import LogRecord, db

    p = team["project"]
    exp, other = seed_experiment(p, name="long", logs=0), seed_experiment(p, name="other", logs=0)
    rng = random.Random(3)
    n = 0
    with app.app_context():
        while n < BLOCK_LINES * 7 // 2:
            for experiment_id in (exp, other):
                size = rng.randint(1, 120)
                db.session.execute(insert(LogRecord), [
                    {"experiment_id": experiment_id, "attempt": 1, "source": f"client-{i % 3}",
                     "stream": "stdout", "line": f"{experiment_id}: line {n + i} é \"quoted\""}
                    for i in range(size)])
                db.session.commit()  # a batch, as the worker's ingest commits them
                if experiment_id == exp:
                    n += size
    return p, exp, n


def _from_database(app, experiment_id, after, limit, source):
    """The page as the API built it before blocks: one query, one dict per line."""
    from flautim.models import Experiment, db
    from flautim.web.api.schemas import log_rows
    from flautim.web.experiments import results
    from flautim.web.response_cache import json_bytes

    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        rows = results.experiment_logs(experiment, attempt=1, after_id=after, source=source, limit=limit + 1)
        items = log_rows(rows[:limit])
        return json_bytes({"items": items, "next_after": items[-1]["id"] if items else after,
                           "has_more": len(rows) > limit})


def test_pages_are_the_database_pages(app, client, team, long_log):
    p, exp, n = long_log
    owner = team["owner"]
    base = f"/api/v1/projects/{p}/experiments/{exp}/logs"
    first = client.get(base + f"?limit={n + 10}", headers=owner).json
    ids = [line["id"] for line in first["items"]]
    assert len(ids) == n and first["has_more"] is False
    # Cursors at, before and after block starts, inside gaps, at the end and past it.
    cursors = {0, ids[0] - 1, ids[0], ids[-1], ids[-1] + 10**6}
    for k in range(1, ids[-1] // BLOCK_LINES + 2):
        cursors |= {k * BLOCK_LINES - 2, k * BLOCK_LINES - 1, k * BLOCK_LINES}
    cursors |= set(random.Random(5).sample(ids, 20))
    for after in sorted(cursors):
        for limit in (1, 7, BLOCK_LINES - 1, BLOCK_LINES, BLOCK_LINES + 1, 1000):
            for source in (None, "client-1"):
                query = f"?after={after}&limit={limit}" + (f"&source={source}" if source else "")
                twice = [client.get(base + query, headers=owner) for _ in range(2)]  # built, then kept
                expected = _from_database(app, exp, after, limit, source)
                assert twice[0].data == expected and twice[1].data == expected, query


def test_a_growing_log_shows_its_new_lines(app, client, team, seed_experiment):
    from flautim.models import LogRecord, db

    p = team["project"]
    exp = seed_experiment(p, logs=0, state="running")
    owner = team["owner"]
    base = f"/api/v1/projects/{p}/experiments/{exp}/logs"

    def add(lines):
        with app.app_context():
            db.session.execute(insert(LogRecord), [
                {"experiment_id": exp, "attempt": 1, "source": "server", "stream": "stdout", "line": text}
                for text in lines])
            db.session.commit()

    def follow(after):
        """Every line after `after`, page by page, as `flautim` follows a log."""
        seen = []
        while True:
            page = client.get(base + f"?after={after}&limit=100", headers=owner).json
            seen += [line["line"] for line in page["items"]]
            after = page["next_after"]
            if not page["has_more"]:
                return seen, after

    add([f"a{i}" for i in range(BLOCK_LINES - 3)])  # the first block, not yet full
    seen, after = follow(0)
    assert seen == [f"a{i}" for i in range(BLOCK_LINES - 3)]
    add([f"b{i}" for i in range(BLOCK_LINES)])  # fills it and most of the next
    more, after = follow(after)
    assert more == [f"b{i}" for i in range(BLOCK_LINES)]
    everything, _ = follow(0)
    assert everything == seen + more
    assert follow(after) == ([], after)


def test_kept_blocks_are_not_read_again(app, client, team, long_log):
    from flautim.models import db

    p, exp, _n = long_log
    owner = team["owner"]
    url = f"/api/v1/projects/{p}/experiments/{exp}/logs?after=0&limit=500"
    reads = []

    def count(_conn, _cursor, statement, *_args):
        if "log_records" in statement:
            reads.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        first = client.get(url, headers=owner)
        assert first.json["has_more"] is True and len(reads) >= 2  # two or more blocks read
        del reads[:]
        again = client.get(url, headers=owner)
        assert again.data == first.data and reads == []
    finally:
        event.remove(engine, "before_cursor_execute", count)
