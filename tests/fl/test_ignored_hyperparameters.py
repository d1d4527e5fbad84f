"""A hyperparameter no part of the run read is named, with the closest right spelling."""

from __future__ import annotations

import pytest

from flautim.fl import hyperparameter_reads as reads
from flautim.fl.api import Dataset
from flautim.fl.hyperparameters import parse_hyperparameters
from tests.fl.runs import copy_bundle, edit, flautim_run


@pytest.fixture(autouse=True)
def fresh_reads():
    reads.forget()
    yield
    reads.forget()


def test_reads_are_noted_and_reading_everything_counts_as_reading_each_key():
    hp = reads.tracked({"a": 1, "b": 2, "c": 3})
    assert hp["a"] == 1 and hp.get("b") == 2
    assert reads.keys_read() == {"a", "b"}
    reads.forget()
    assert "zzz" not in hp and reads.keys_read() == {"zzz"}
    reads.forget()
    assert dict(hp) == {"a": 1, "b": 2, "c": 3}  # a copy may be read anywhere later
    assert reads.keys_read() == {"a", "b", "c"}


def test_the_datasets_own_copy_goes_on_noting_reads(tmp_path):
    dataset = Dataset(tmp_path, reads.tracked({"mine": 1, "other": 2}))
    assert reads.keys_read() == set()
    assert dataset.hyperparameters["mine"] == 1
    assert reads.keys_read() == {"mine"}


def test_only_unread_keys_of_the_run_are_named_with_a_suggestion():
    hp = parse_hyperparameters(
        'partitioning = "iid"\ndirichlet_alpha = 1.0\nmy_dropout = 0.2\nlerning_rate = 0.1\nzebra_count = 3\n'
    )
    reads.note("my_dropout")
    warnings = {w["params"]["key"]: w for w in reads.ignored_warnings(hp)}
    assert set(warnings) == {"dirichlet_alpha", "lerning_rate", "zebra_count"}
    alpha = warnings["dirichlet_alpha"]
    assert alpha["code"] == "hyperparameters.ignored_key" and alpha["help"] == "configuracao-de-hiperparametros"
    assert alpha["params"]["where"] == "hyperparameters.py:2"
    assert alpha["params"]["suggestion"] == 'partitioning = "dirichlet" and partitioning_options = {"alpha": 1.0}'
    assert warnings["lerning_rate"]["params"]["suggestion"] == "learning_rate"
    assert "suggestion" not in warnings["zebra_count"]["params"]
    # `flautim run` prints a warning's message and hint: the line is in the message.
    assert alpha["message"].startswith("hyperparameters.py:2: `dirichlet_alpha` was read neither")
    assert "did you mean" in alpha["hint"]


def test_hostile_reports_of_other_processes_are_bounded():
    reads.note_reported("not json [")
    reads.note_reported('{"a": 1}')
    reads.note_reported(["x" * 1000, 5, "ok"])
    assert reads.keys_read() == {"ok"}


def test_a_real_run_names_the_misspelled_key_and_not_the_ones_its_code_read(tmp_path):
    """Through `flautim run`: prepare's Dataset reads one key, the clients' training loop
    another, the server's central evaluation a third; only the misspelled one is named."""
    bundle = copy_bundle(tmp_path)
    hyperparameters = bundle / "hyperparameters.py"
    hyperparameters.write_text(
        hyperparameters.read_text().replace("rounds = 3", "rounds = 2")
        + "dirichlet_alpha = 1.0\ndataset_scale = 16.0\nclip = 5.0\nreport_name = 'central'\n"
    )
    edit(bundle / "dataset.py", "/ 16.0", "/ float(self.hyperparameters['dataset_scale'])")
    edit(bundle / "api.py", "            loss.backward()\n",
         "            loss.backward()\n"
         "            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hyperparameters.get('clip'))\n")
    edit(bundle / "api.py", "        self.model.eval()\n",
         "        self.model.eval()\n        if self.client_id is None:\n"
         "            assert self.hyperparameters['report_name'] == 'central'\n")
    code, events, stderr = flautim_run(bundle)
    assert code == 0, stderr
    ignored = [e for e in events if e["type"] == "warning" and e.get("code") == "hyperparameters.ignored_key"]
    assert [e["params"]["key"] for e in ignored] == ["dirichlet_alpha"], ignored
    (warning,) = ignored
    assert warning["params"]["suggestion"] == 'partitioning = "dirichlet" and partitioning_options = {"alpha": 1.0}'
    assert warning["params"]["where"].startswith("hyperparameters.py:")
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "completed"
    assert events.index(warning) < len(events) - 1
