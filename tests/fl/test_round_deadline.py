"""A client that never answers (an endless loop in `training_loop`) no longer holds the run
for its whole time limit: the round deadline fails the round, or drops the client where the
strategy allows it, naming the client and the round (issue 13 §5). Real `flautim run`
processes on the fast transport."""

from __future__ import annotations

import time

import pytest

from flautim.fl.hyperparameters import parse_hyperparameters
from flautim.fl.round_deadline import RoundDeadline
from tests.fl.runs import copy_bundle, edit, flautim_run, only_error

# Well under the 600 s time limit the bundles keep: a run that waits for the stuck client
# until then fails the test by its subprocess timeout instead.
RUN_TIMEOUT_S = 150

STUCK = (
    "        self.model.train()\n"
    "        if self.client_id == {client} and self.round >= {round}:\n"
    "            import time\n"
    "            while True:  # never answers\n"
    "                time.sleep(0.5)\n"
)


def _stuck_bundle(tmp_path, client: int, from_round: int, extra: str):
    bundle = copy_bundle(tmp_path)
    edit(bundle / "api.py", "        self.model.train()\n", STUCK.format(client=client, round=from_round))
    (bundle / "hyperparameters.py").write_text((bundle / "hyperparameters.py").read_text() + extra)
    return bundle


@pytest.mark.slow
def test_a_client_stuck_in_training_fails_its_round_at_the_deadline_naming_it(tmp_path):
    bundle = _stuck_bundle(tmp_path, client=1, from_round=2, extra="round_deadline_floor_s = 3\n")
    started = time.monotonic()
    code, events, _ = flautim_run(bundle, "--clients", "3", "--rounds", "3", timeout=RUN_TIMEOUT_S)
    took = time.monotonic() - started

    assert code == 1
    error = only_error(events)
    assert error["kind"] == "timeout"
    assert error["client"] == 1
    assert "client 1" in error["what"] and "round 2" in error["what"]
    assert "round deadline" in error["what"]
    assert error["where"] == "round 2, train"
    assert events[-1]["rounds_completed"] == 1
    assert error["code"] == "round.deadline_missed"
    assert error["params"]["clients"] == "1" and error["params"]["round"] == 2 and error["params"]["phase"] == "train"
    print(f"\nFIGURE stuck client: run failed after {took:.1f} s (time limit 600 s): {error['what']}")


@pytest.mark.slow
def test_a_late_client_is_dropped_where_the_strategy_can_go_on_without_it(tmp_path):
    # fraction_fit / fraction_evaluate 0.5 of 4: each round samples 2, so 3 clients left
    # still meet the strategy's minimums. Six rounds: client 3 is sampled at least once
    # unless a 1-in-4,096 draw leaves it out every time.
    bundle = _stuck_bundle(
        tmp_path, client=3, from_round=1,
        extra="round_deadline_floor_s = 3\nfraction_fit = 0.5\nfraction_evaluate = 0.5\n",
    )
    code, events, stderr = flautim_run(bundle, "--clients", "4", "--rounds", "6", timeout=RUN_TIMEOUT_S)

    assert code == 0, [e for e in events if e["type"] == "error"] or stderr[-3000:]
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "completed"
    assert events[-1]["rounds_completed"] == 6
    warnings = [e for e in events if e["type"] == "warning" and e.get("client") == 3]
    assert len(warnings) == 1, [e for e in events if e["type"] == "warning"]
    dropped_in = warnings[0]["round"]
    assert "client 3 did not answer" in warnings[0]["message"]
    assert f"round {dropped_in}" in warnings[0]["message"] and "dropped" in warnings[0]["message"]
    assert warnings[0]["code"] == "round.client_dropped"
    assert warnings[0]["params"]["round"] == dropped_in and warnings[0]["params"]["left"] == 3
    # Never asked again once dropped.
    later = [e for e in events if e["type"] in ("client_train", "client_evaluate")
             and e["client"] == 3 and e["round"] >= dropped_in]
    assert later == []


def test_the_deadline_follows_the_other_clients_with_a_floor():
    deadline = RoundDeadline(multiple=5.0, floor_s=60.0)
    assert deadline.limit_s("train", []) is None  # nobody answered yet: only the time limit
    assert deadline.limit_s("train", [2.0, 3.0]) == 60.0  # 5 x 3 s is under the floor
    assert deadline.limit_s("train", [2.0, 30.0]) == 150.0
    deadline.record("train", [2.0, 30.0])
    # The next round, before anyone answers: the previous round's slowest.
    assert deadline.limit_s("train", []) == 150.0
    assert deadline.limit_s("evaluate", []) is None
    assert "5 × the 30.0 s the slowest other client took" in deadline.rule("train", [30.0])
    assert RoundDeadline(fixed_s=20.0).limit_s("train", []) == 20.0


def test_the_deadline_settings_are_checked_hyperparameters():
    hp = parse_hyperparameters("round_deadline_s = 45\nround_deadline_multiple = 3\ndrop_late_clients = False\n")
    assert (hp.round_deadline_s, hp.round_deadline_multiple, hp.drop_late_clients) == (45.0, 3.0, False)
    deadline = RoundDeadline.from_hyperparameters(hp)
    assert deadline.fixed_s == 45.0 and deadline.multiple == 3.0 and deadline.floor_s == 60.0
    with pytest.raises(Exception, match="round_deadline_multiple"):
        parse_hyperparameters("round_deadline_multiple = 0.5\n")
