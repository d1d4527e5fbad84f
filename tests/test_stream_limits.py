"""Live streams are bounded per user (STREAMS_PER_USER, counted in Redis; one more is a 429
that says why) and re-check access while open: a member removed from the project, or a
deactivated account, stops receiving within a few seconds."""

from __future__ import annotations

import random
import threading

import pytest
import requests
from sqlalchemy import delete, update

from tests.experiments_support import setup_project
from tests.test_experiments_live import SseReader, browser_session

LIMIT = 3


@pytest.fixture
def config_overrides():
    return {"STREAMS_PER_USER": LIMIT, "STREAM_RECHECK_S": 0.5}


def _running_experiment(project_id: int) -> int:
    """A running experiment under an id no other test session uses: Redis pub/sub channels
    are shared by every database number, and the engineers' suites run side by side."""
    from flautim.models import Experiment, ExperimentState, db

    experiment = Experiment(id=random.randrange(10**8, 2 * 10**9), project_id=project_id, name="e",
                            rounds_total=3, summary={})
    db.session.add(experiment)
    db.session.commit()
    for step in ("queued", "preparing", "running"):
        experiment.transition(ExperimentState(step))
    db.session.commit()
    return experiment.id


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    c = setup_project(make_user, make_project, client)
    c["experiment"] = _running_experiment(c["project_id"])
    return c


def _open(session: requests.Session, url: str) -> requests.Response:
    return session.get(url, stream=True, timeout=30)


def test_one_stream_past_the_limit_is_a_429(app, ctx, live_server):
    url = f"{live_server.url}/projects/{ctx['project_id']}/experiments/{ctx['experiment']}/stream"
    owner = browser_session(live_server.url, "dona@example.org")
    streams = [_open(owner, url) for _ in range(LIMIT)]
    try:
        assert [r.status_code for r in streams] == [200] * LIMIT
        # Each is really open: it caught up and stays (the run is running).
        for r in streams:
            assert SseReader(r).until(lambda m: m["event"] == "state")
        refused = owner.get(url, timeout=30)
        assert refused.status_code == 429
        assert f"{LIMIT} atualizações ao vivo abertas" in refused.text
        assert refused.headers["Retry-After"] == "30"
        # Another user is not affected by this one's streams.
        viewer = browser_session(live_server.url, "leitor@example.org")
        other = _open(viewer, url)
        assert other.status_code == 200
        other.close()
        # A closed stream gives its slot back.
        streams.pop().close()
        for _ in range(100):
            again = _open(owner, url)
            if again.status_code == 200:
                streams.append(again)
                break
            again.close()
            threading.Event().wait(0.1)
        else:
            pytest.fail("the slot of a closed stream was not given back")
    finally:
        for r in streams:
            r.close()


def _watch_until_end(reader: SseReader, out: list) -> None:
    try:
        out.extend(reader.until(lambda m: m["event"] == "end"))
    except Exception as exc:  # reported by the test thread
        out.append(exc)


@pytest.mark.parametrize("how", ["removed from the project", "account deactivated"])
def test_a_viewer_who_loses_access_stops_receiving_within_seconds(app, ctx, live_server, db_session, how):
    from flautim.models import Membership, User, db

    url = f"{live_server.url}/projects/{ctx['project_id']}/experiments/{ctx['experiment']}/stream"
    viewer = browser_session(live_server.url, "leitor@example.org")
    response = _open(viewer, url)
    assert response.status_code == 200
    reader = SseReader(response)
    reader.until(lambda m: m["event"] == "state")
    seen: list = []
    watcher = threading.Thread(target=_watch_until_end, args=(reader, seen), daemon=True)
    watcher.start()
    # Still a member: the stream stays open past several re-checks.
    watcher.join(2.0)
    assert watcher.is_alive(), seen

    if how == "removed from the project":
        db.session.execute(delete(Membership).where(Membership.user_id == ctx["viewer"],
                                                       Membership.project_id == ctx["project_id"]))
    else:
        db.session.execute(update(User).where(User.id == ctx["viewer"]).values(active=False))
    db.session.commit()

    watcher.join(10.0)
    response.close()
    assert not watcher.is_alive(), "the stream kept going after access was taken away"
    assert not [m for m in seen if isinstance(m, Exception)], seen
    assert seen[-1] == {**seen[-1], "event": "end", "data": {"revoked": True}}


def test_slots_expire_when_their_process_died(app):
    """A slot not renewed (its process died) stops counting when its lease ends."""
    import time

    import redis

    from flautim.web.experiments.live import StreamSlots

    client = redis.Redis.from_url(app.extensions["flautim_config"].REDIS_URL)
    slots = StreamSlots(client, 4242, limit=1, lease_s=0.3)
    assert slots.acquire() is not None
    assert slots.acquire() is None
    time.sleep(0.4)
    assert slots.acquire() is not None
