"""Bundles: layout, static checks at upload, importing user code with file:line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flautim.fl import Dataset, Experiment
from flautim.fl.bundle import Bundle, check_api_source, check_dataset_source, load_user_code
from flautim.fl.errors import FlautimError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _line(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(text)


def test_load_finds_the_user_classes(digits_bundle):
    bundle = Bundle.load(digits_bundle())
    code = load_user_code(bundle)
    assert issubclass(code.dataset_class, Dataset) and code.dataset_class.__name__ == "Digits"
    assert issubclass(code.experiment_class, Experiment)
    assert code.experiment_class._flautim_model_class.__name__ == "Model"


def test_missing_file_is_named(tmp_path, digits_bundle):
    root = digits_bundle()
    (root / "api.py").unlink()
    with pytest.raises(FlautimError) as info:
        Bundle.load(root)
    assert info.value.where == "api.py" and "no api.py" in info.value.what


def test_code_hash_follows_the_code(digits_bundle):
    root = digits_bundle()
    first = Bundle.load(root).code_hash()
    assert Bundle.load(root).code_hash() == first
    (root / "hyperparameters.py").write_text("rounds = 9\n")
    assert Bundle.load(root).code_hash() != first


def test_syntax_error_in_api_names_the_line(digits_bundle):
    root = digits_bundle(api="from flautim.fl import Experiment\n\nclass E(Experiment)\n    pass\n")
    with pytest.raises(FlautimError) as info:
        load_user_code(Bundle.load(root))
    assert info.value.where == "api.py:3"
    assert "SyntaxError" in info.value.what and "class E(Experiment)" in info.value.what
    assert info.value.kind == "user_code"


def test_missing_module_names_the_import_and_the_image(digits_bundle):
    root = digits_bundle(api="import torch\nimport tensorflow_not_here as tf\n")
    with pytest.raises(FlautimError) as info:
        load_user_code(Bundle.load(root))
    assert info.value.where == "api.py:2"
    assert "'tensorflow_not_here'" in info.value.what and "not installed" in info.value.what
    assert "torch" in info.value.hint


def test_exception_at_import_names_the_line(digits_bundle):
    root = digits_bundle(dataset="from flautim.fl import Dataset\nDATA = {}\nSIZE = DATA['size']\n")
    with pytest.raises(FlautimError) as info:
        load_user_code(Bundle.load(root))
    assert info.value.where == "dataset.py:3" and "KeyError" in info.value.what



def test_api_may_import_helpers_shipped_in_the_bundle(digits_bundle):
    from textwrap import dedent

    from tests.fl import conftest as fl_conftest

    root = digits_bundle(api=dedent(fl_conftest.DIGITS_API).replace(
        "class Model(nn.Module):", "from layers import WIDTH\n\nclass Model(nn.Module):"))
    (root / "layers.py").write_text("WIDTH = 32\n")
    code = load_user_code(Bundle.load(root))
    assert code.api_module.WIDTH == 32


def test_static_checks_of_api_source():
    assert check_api_source((EXAMPLES / "mnist" / "api.py").read_text()) == []
    assert check_api_source((EXAMPLES / "tabular" / "api.py").read_text()) == []
    [error] = check_api_source("def f(:\n  pass\n")
    assert error.where == "api.py:1" and "syntax error" in error.what
    [error] = check_api_source("import torch\n")
    assert "no subclass of Experiment" in error.what
    errors = check_api_source(
        "from flautim.fl import Experiment\nclass Model: pass\n\nclass E(Experiment):\n"
        "    def training_loop(self, d):\n        return 0, {}\n"
    )
    assert [e.what for e in errors] == ["class E has no validation_loop(self, data_loader) method"]
    assert errors[0].where == "api.py:4"
    errors = check_api_source(
        "import flautim.fl as fl\nclass E(fl.Experiment):\n"
        "    def training_loop(self, d): pass\n    def validation_loop(self, d): pass\n"
    )
    assert [e.what for e in errors] == ["api.py defines no model"]


def test_static_checks_of_dataset_source():
    assert check_dataset_source((EXAMPLES / "mnist" / "dataset.py").read_text()) == []
    [error] = check_dataset_source("x = (\n", filename="dataset.py")
    assert error.where.startswith("dataset.py:")
    [error] = check_dataset_source("from flautim.fl import Dataset\nclass D(Dataset):\n    def train(self): pass\n")
    assert "validation" in error.what and error.where == "dataset.py:2"


def test_two_experiments_are_refused(digits_bundle):
    from tests.fl import conftest as fl_conftest

    api = fl_conftest.DIGITS_API + "\n\nclass Other(DigitsExperiment):\n    pass\n"
    with pytest.raises(FlautimError) as info:
        load_user_code(Bundle.load(digits_bundle(api=api)))
    assert "exactly one subclass of Experiment" in info.value.what
    assert "DigitsExperiment, Other" in info.value.what
