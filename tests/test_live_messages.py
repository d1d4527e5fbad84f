"""The live-update messages and the headline rule (flautim/live_messages.py): one shape per
kind whoever builds it, and the figures decided on the server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import redis

from flautim import live_messages as lm


def test_imports_without_flask_or_sqlalchemy():
    code = "import sys, flautim.live_messages; print(sorted(m for m in ('flask', 'sqlalchemy') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_accuracy_is_the_first_of_its_names_and_a_finite_number():
    assert lm.accuracy_of({"acc": 0.4, "val_accuracy": 0.3}) == 0.4
    assert lm.accuracy_of({"val_accuracy": 0.3, "accuracy": 0.9}) == 0.9
    for hostile in ({"accuracy": float("nan")}, {"accuracy": "0.9"}, {"accuracy": True}, {"accuracy": 10**400},
                    {"loss": 1.0}, None, [0.9]):
        assert lm.accuracy_of(hostile) is None


def test_event_messages_carry_their_accuracy():
    scored = lm.event_message(7, 1, "aggregated", {"round": 2, "phase": "evaluate", "metrics": {"acc": 0.8}})
    assert scored == {"kind": "event", "id": 7, "attempt": 1, "type": "aggregated",
                      "payload": {"round": 2, "phase": "evaluate", "metrics": {"acc": 0.8}}, "accuracy": 0.8}
    assert lm.event_message(8, 1, "checkpoint", {"metrics": {"accuracy": 0.8}})["accuracy"] is None
    assert lm.event_message(9, 1, "central_evaluate", "not a dict")["accuracy"] is None


def test_the_headline_prefers_the_central_evaluation():
    headline: dict = {}
    lm.score(headline, {"type": "aggregated", "round": 1, "loss": 0.9, "metrics": {"accuracy": 0.5}})
    assert headline == {"source": "federated", "round": 1, "loss": 0.9, "best_loss": 0.9,
                        "accuracy": 0.5, "best_accuracy": 0.5}
    lm.score(headline, {"type": "central_evaluate", "round": 1, "loss": 0.7, "metrics": {"acc": 0.65}})
    lm.score(headline, {"type": "aggregated", "round": 2, "loss": 0.1, "metrics": {"accuracy": 0.99}})
    lm.score(headline, {"type": "central_evaluate", "round": 2.0, "loss": float("nan"), "metrics": {"accuracy": 0.6}})
    assert headline["source"] == "central" and headline["round"] == 2
    assert (headline["accuracy"], headline["best_accuracy"], headline["loss"], headline["best_loss"]) == (0.6, 0.65, 0.7, 0.7)


def test_state_and_log_messages():
    experiment = SimpleNamespace(
        id=3, state="running", attempt=2, rounds_done=1, rounds_total=5, failure_kind=None, failure_reason=None,
        cancel_requested=False, started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), finished_at=None,
        summary={"accuracy": 0.5, "best_accuracy": 0.6, "sandbox_backend": "local", "eta_s": 3.0},
    )
    state = lm.state_message(experiment)
    assert state["kind"] == "state" and state["id"] == 3 and state["attempt"] == 2
    assert state["started_at"] == "2026-01-02T03:04:05+00:00" and state["finished_at"] is None
    assert state["headline"] == {"accuracy": 0.5, "best_accuracy": 0.6}
    log = lm.log_message(4, 2, "client-0", "stdout", "época 1", datetime(2026, 1, 2, tzinfo=UTC))
    assert json.loads(lm.encode(log)) == {"kind": "log", "id": 4, "attempt": 2, "source": "client-0",
                                          "stream": "stdout", "line": "época 1", "created_at": "2026-01-02T00:00:00+00:00"}
    assert lm.channel_for(redis.Redis(db=4), 3) == "flautim:4:experiment:3"


def test_sites_sharing_a_redis_server_do_not_hear_each_other():
    """Pub/sub channels are server-wide while keys are per database: two sites (or two test
    runs) on different databases of one server both have an experiment 1, and a page of one
    must not receive the other's messages (a stranger's "succeeded" reloaded a running page)."""
    from tests.conftest import REDIS_URL

    here = redis.Redis.from_url(REDIS_URL)
    database = int(here.connection_pool.connection_kwargs.get("db") or 0)
    there = redis.Redis.from_url(urlsplit(REDIS_URL)._replace(path=f"/{(database + 1) % 16}").geturl())
    listeners = {}
    for name, client in (("here", here), ("there", there)):
        listeners[name] = client.pubsub()
        listeners[name].subscribe(lm.channel_for(client, 1))
        assert listeners[name].get_message(timeout=5)["type"] == "subscribe"
    try:
        there.publish(lm.channel_for(there, 1), lm.encode({"kind": "state", "state": "succeeded"}))
        heard = listeners["there"].get_message(timeout=5)
        assert heard is not None and json.loads(heard["data"])["state"] == "succeeded"
        assert listeners["here"].get_message(timeout=0.5) is None
    finally:
        for listener in listeners.values():
            listener.close()
