"""hyperparameters.py is parsed with ast (never executed) and checked key by key."""

from __future__ import annotations

import pytest

from flautim.fl.hyperparameters import (
    HyperparameterError,
    Hyperparameters,
    load_hyperparameters,
    parse_hyperparameters,
)


def test_known_keys_aliases_and_extra_keys():
    hp = parse_hyperparameters(
        '"""my settings"""\n'
        "num_rounds = 7\n"
        "lr = 1e-3\n"
        "epochs = 3\n"
        'optimizer = "Adam"\n'
        'partitioning = "dirichlet"\n'
        'partitioning_options = {"alpha": 0.3}\n'
        "hidden_units: int = 128\n"
        "layers = [64, 32]\n"
    )
    assert (hp.rounds, hp.learning_rate, hp.local_epochs) == (7, 1e-3, 3)
    assert hp.optimizer == "adam"
    assert hp.partitioning_options == {"alpha": 0.3}
    assert hp.extra == {"hidden_units": 128, "layers": [64, 32]}
    values = hp.to_dict()
    assert values["hidden_units"] == 128 and values["rounds"] == 7
    assert "extra" not in values and "warnings" not in values
    assert hp.lines["rounds"] == 2


def test_defaults_when_empty():
    assert parse_hyperparameters("") == Hyperparameters()


def test_the_file_is_never_executed(tmp_path):
    marker = tmp_path / "executed"
    source = f"rounds = 3\nopen({str(marker)!r}, 'w').write('x')\n"
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters(source)
    assert not marker.exists()
    assert info.value.where == "hyperparameters.py:2"
    assert "not an assignment" in info.value.what

    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters(f"rounds = open({str(marker)!r}, 'w')\n")
    assert not marker.exists()
    assert "not a literal" in info.value.what


@pytest.mark.parametrize(
    ("source", "line", "fragment", "hint_fragment"),
    [
        ("rounds = 3\n\nimport os\n", 3, "import os", "imports are not allowed"),
        ("x = 1/3\n", 1, "not a literal", "arithmetic"),
        ("rounds = 5\nbatch_size = -4\n", 2, "`batch_size` must be a whole number", "batch_size ="),
        ("learning_rate = 'fast'\n", 1, "`learning_rate` must be a number", ""),
        ("rounds = 2.5\n", 1, "`rounds` must be a whole number", ""),
        ("rounds = True\n", 1, "`rounds`", ""),
        ("strategy = 'FedAvgg'\n", 1, "`strategy` must be one of", "did you mean 'FedAvg'"),
        ("device = 'tpu'\n", 1, "`device`", ""),
        ("rounds = 3\ntransport = 'grpc'\n", 2, "`transport`", ""),
        ("rounds = (\n", 1, "syntax error", "literal"),
        ("def f():\n    pass\n", 1, "not an assignment", "api.py"),
        ("a, b = 1, 2\n", 1, "only simple names", ""),
        ("opt = adam\n", 1, "not a literal", "is a name"),
        ("partitioning = 'dirichlet'\npartitioning_options = {'alpha': -1}\n", 2, "alpha", ""),
        ("partitioning_options = {'alpha': 1}\n", 1, "iid does not take", "options of iid"),
        ("num_clients = 2\ndifferential_privacy = {'noise_multiplier': 1.0, 'clipping_norm': 1.0, 'num_sampled_clients': 5}\n",
         2, "larger than num_clients", ""),
        ("differential_privacy = {'noise': 1.0}\n", 1, "unknown option", "noise_multiplier"),
        ("checkpoint = {'keep': 3}\n", 1, "unknown option", "keep_last"),
        ("rounds = 3\nnum_rounds = 4\n", 2, "another name for `rounds`", ""),
    ],
)
def test_bad_values_name_the_line_and_give_a_hint(source, line, fragment, hint_fragment):
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters(source)
    error = info.value
    assert error.where == f"hyperparameters.py:{line}"
    assert fragment in error.what
    assert hint_fragment in error.hint
    assert error.kind == "hyperparameters"
    assert error.event_fields()["where"] == error.where


def test_near_miss_keys_are_kept_with_a_warning():
    hp = parse_hyperparameters("rounds = 2\nlearning_rat = 0.1\n")
    assert hp.extra == {"learning_rat": 0.1}
    assert hp.learning_rate == Hyperparameters().learning_rate
    (warning,) = hp.warnings
    assert "learning_rate" in warning["message"] and ":2" in warning["message"]
    assert warning["code"] == "hyperparameters.unknown_key"
    assert warning["params"] == {"key": "learning_rat", "suggestion": "learning_rate"}
    assert warning["help"] == "configuracao-de-hiperparametros"


def test_checkpoint_mode_follows_the_metric():
    assert parse_hyperparameters("checkpoint = {'best_metric': 'accuracy'}").checkpoint["mode"] == "max"
    assert parse_hyperparameters("checkpoint = {'best_metric': 'val_loss'}").checkpoint["mode"] == "min"
    hp = parse_hyperparameters("checkpoint = {'best_metric': 'f1', 'mode': 'min', 'keep_last': 0}")
    assert hp.checkpoint == {"keep_last": 0, "best_metric": "f1", "mode": "min"}


def test_overrides_are_checked_too():
    hp = parse_hyperparameters("rounds = 3\nmy_key = 'kept'\n")
    other = hp.with_overrides(num_clients=8, rounds=None)
    assert (other.num_clients, other.rounds, other.extra) == (8, 3, {"my_key": "kept"})
    with pytest.raises(HyperparameterError) as info:
        hp.with_overrides(filename="--clients", num_clients=0)
    assert "num_clients" in info.value.what and info.value.where.startswith("--clients")


def test_load_missing_or_binary_file(tmp_path):
    with pytest.raises(HyperparameterError) as info:
        load_hyperparameters(tmp_path / "hyperparameters.py")
    assert "missing" in info.value.what
    bad = tmp_path / "hyperparameters.py"
    bad.write_bytes(b"rounds = 3\n\xff\xfe")
    with pytest.raises(HyperparameterError) as info:
        load_hyperparameters(bad)
    assert "UTF-8" in info.value.what


def test_examples_hyperparameters_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples"
    mnist = load_hyperparameters(root / "mnist" / "hyperparameters.py")
    assert mnist.num_clients == 10 and mnist.checkpoint["mode"] == "max"
    tabular = load_hyperparameters(root / "tabular" / "hyperparameters.py")
    assert tabular.partitioning == "dirichlet"
