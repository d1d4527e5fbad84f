"""The live-update messages and the headline figures (flautim/live_messages.py): one shape per
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
from flautim.headline import Headline


def test_imports_without_flask_or_sqlalchemy():
    code = "import sys, flautim.live_messages; print(sorted(m for m in ('flask', 'sqlalchemy') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_event_messages_carry_the_payload_as_sent():
    scored = lm.event_message(7, 1, "aggregated", {"round": 2, "phase": "evaluate", "metrics": {"mae": 0.8}})
    assert scored == {"kind": "event", "id": 7, "attempt": 1, "type": "aggregated",
                      "payload": {"round": 2, "phase": "evaluate", "metrics": {"mae": 0.8}}}


ACCURACY = Headline("accuracy", "max")


def test_the_headline_prefers_the_central_evaluation():
    summary: dict = {}
    lm.score(summary, {"type": "aggregated", "round": 1, "loss": 0.9, "metrics": {"accuracy": 0.5}}, ACCURACY)
    assert summary == {"source": "federated", "round": 1, "loss": 0.9, "best_loss": 0.9, "metric": "accuracy",
                       "metric_mode": "max", "metric_value": 0.5, "metric_best": 0.5}
    lm.score(summary, {"type": "central_evaluate", "round": 1, "loss": 0.7, "metrics": {"accuracy": 0.65}}, ACCURACY)
    lm.score(summary, {"type": "aggregated", "round": 2, "loss": 0.1, "metrics": {"accuracy": 0.99}}, ACCURACY)
    lm.score(summary, {"type": "central_evaluate", "round": 2.0, "loss": float("nan"), "metrics": {"accuracy": 0.6}},
             ACCURACY)
    assert summary["source"] == "central" and summary["round"] == 2
    assert (summary["metric_value"], summary["metric_best"], summary["loss"], summary["best_loss"]) == (0.6, 0.65, 0.7, 0.7)


def test_a_regression_headline_is_best_when_lowest_and_hostile_values_are_ignored():
    mae = Headline("mae", "min")
    summary: dict = {}
    for rnd, value in ((1, 0.9), (2, 0.4), (3, 0.6), (4, float("nan")), (5, "0.1"), (6, True), (7, 10**400)):
        lm.score(summary, {"type": "central_evaluate", "round": rnd, "loss": 1.0, "metrics": {"mae": value}}, mae)
    assert (summary["metric"], summary["metric_mode"], summary["metric_value"], summary["metric_best"]) == (
        "mae", "min", 0.6, 0.4)


def test_the_figures_start_over_when_the_headline_settles_on_another_metric():
    summary: dict = {}
    lm.score(summary, {"type": "central_evaluate", "round": 0, "loss": 2.0, "metrics": {}}, Headline("loss", "min"))
    assert (summary["metric"], summary["metric_value"]) == ("loss", 2.0)
    lm.score(summary, {"type": "central_evaluate", "round": 1, "loss": 1.0, "metrics": {"mse": 3.0}},
             Headline("mse", "min"))
    assert (summary["metric"], summary["metric_value"], summary["metric_best"]) == ("mse", 3.0, 3.0)


def test_state_and_log_messages():
    experiment = SimpleNamespace(
        id=3, state="running", attempt=2, rounds_done=1, rounds_total=5, failure_kind=None, failure_reason=None,
        cancel_requested=False, started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), finished_at=None,
        summary={"metric": "mae", "metric_mode": "min", "metric_value": 0.5, "metric_best": 0.4,
                 "sandbox_backend": "local", "eta_s": 3.0},
    )
    state = lm.state_message(experiment)
    assert state["kind"] == "state" and state["id"] == 3 and state["attempt"] == 2
    assert state["started_at"] == "2026-01-02T03:04:05+00:00" and state["finished_at"] is None
    assert state["headline"] == {"metric": "mae", "metric_mode": "min", "metric_value": 0.5, "metric_best": 0.4}
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
