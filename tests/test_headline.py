"""The one rule for a run's headline metric (flautim/headline.py) and which way it improves."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flautim import headline
from flautim.fl.hyperparameters import metric_mode, parse_hyperparameters
from flautim.headline import Headline


def values(source: str) -> dict:
    """Hyperparameters as the platform stores them (defaults included: checkpoint too)."""
    return parse_hyperparameters(source).to_dict()


def test_imports_without_flask_or_sqlalchemy():
    code = "import sys, flautim.headline; print(sorted(m for m in ('flask', 'sqlalchemy', 'torch') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


@pytest.mark.parametrize(("name", "mode"), [
    ("loss", "min"), ("val_loss", "min"), ("mse", "min"), ("MAE", "min"), ("rmse", "min"), ("mean_squared_error", "min"),
    ("perplexity", "min"), ("accuracy", "max"), ("acc", "max"), ("f1", "max"), ("auc", "max"), ("r2", "max"),
])
def test_which_way_a_metric_improves(name, mode):
    assert metric_mode(name) == mode


def test_a_checkpoint_following_mae_keeps_the_lowest():
    """The checkpoint's best follows the same direction as the headline."""
    assert values('checkpoint = {"best_metric": "mae"}')["checkpoint"]["mode"] == "min"


def test_the_checkpoints_best_metric_leads():
    hp = values('checkpoint = {"best_metric": "mae"}')
    assert headline.headline_metric(hp, ["mse", "mae"]) == Headline("mae", "min")
    # An explicit mode wins over the name's.
    hp = values('checkpoint = {"best_metric": "score", "mode": "min"}')
    assert headline.headline_metric(hp, ["accuracy"]) == Headline("score", "min")


def test_without_a_chosen_metric_the_first_reported_one_leads():
    hp = values("rounds = 3")  # best_metric defaults to the loss: not a headline of its own
    assert hp["checkpoint"]["best_metric"] == "loss"
    assert headline.headline_metric(hp, ["loss", "mse", "mae"]) == Headline("mse", "min")
    assert headline.headline_metric(hp, ["accuracy", "f1"]) == Headline("accuracy", "max")
    assert headline.headline_metric(None, ["x" * 65, "f1"]) == Headline("f1", "max")


def test_a_run_that_reports_only_its_loss_leads_with_the_loss():
    assert headline.headline_metric(values("rounds = 3"), ["loss"]) == Headline("loss", "min")
    assert headline.headline_metric({}, []) == Headline("loss", "min")


def test_hostile_stored_values_fall_back_to_the_rule():
    for hp in ({"checkpoint": "mae"}, {"checkpoint": {"best_metric": 3}}, {"checkpoint": {"best_metric": ""}},
               {"checkpoint": {"best_metric": "a" * 65}}, "not a dict", None):
        assert headline.headline_metric(hp, ["mae"]) == Headline("mae", "min")
    assert headline.headline_metric({"checkpoint": {"best_metric": "f1", "mode": "sideways"}}, []) == Headline("f1", "max")


def test_the_stored_headline_and_the_experiments_headline():
    assert headline.stored({"metric": "mae", "metric_mode": "min"}) == Headline("mae", "min")
    for summary in ({"metric": "mae"}, {"metric": "mae", "metric_mode": "up"}, {"metric": 3, "metric_mode": "min"}, None):
        assert headline.stored(summary) is None
    # Before the worker wrote one: the rule from the hyperparameters alone.
    assert headline.of_experiment({}, values('checkpoint = {"best_metric": "accuracy"}')) == Headline("accuracy", "max")
    assert headline.of_experiment(None, None) == Headline("loss", "min")


def test_better_and_best_follow_the_direction():
    assert Headline("mae", "min").better(0.1, 0.2) and not Headline("mae", "min").better(0.3, 0.2)
    assert Headline("accuracy", "max").better(0.9, 0.8) and Headline("accuracy", "max").better(0.1, None)
    assert Headline("mae", "min").best([0.3, 0.1, 0.2]) == 0.1 and Headline("f1", "max").best([0.3, 0.5]) == 0.5
    assert Headline("f1", "max").best([]) is None
    assert headline.mode_of("accuracy") == "max" and headline.mode_of("loss") == "min"
    assert headline.mode_of("score", {"checkpoint": {"best_metric": "score", "mode": "min"}}) == "min"


def test_the_terminal_progress_follows_the_headline_metric():
    """`flautim submit`'s progress line: the rule on the names the run reports, then the
    experiment's own headline once the API names it."""
    import io

    from flautim.api_client.progress import ProgressView

    view = ProgressView(io.StringIO())
    view.feed({"type": "central_evaluate", "payload": {"round": 1, "loss": 0.9, "metrics": {"mse": 0.9, "mae": 0.7}}})
    assert "mse 0.9000" in view.line() and "loss 0.9000" in view.line()
    view.update_experiment({"state": "running", "rounds_total": 3, "headline_metric": {"name": "mae", "mode": "min"}})
    view.feed({"type": "central_evaluate", "payload": {"round": 2, "loss": 0.5, "metrics": {"mse": 0.5, "mae": 0.4}}})
    assert "mae 0.4000" in view.line() and "acc" not in view.line()
    view.feed({"type": "aggregated", "payload": {"round": 3, "phase": "train", "metrics": {"mae": 0.1}}})
    assert "mae 0.4000" in view.line()  # training is not an evaluation
