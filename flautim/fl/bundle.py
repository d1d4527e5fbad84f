"""An experiment bundle on disk and the user code inside it.

A bundle is a folder with `dataset.py` (a `flautim.fl.Dataset` subclass), `data/` (the files
it reads), `api.py` (the model and a `flautim.fl.Experiment` subclass) and
`hyperparameters.py` (literals, never executed). `Bundle.load` checks the layout;
`check_api_source` / `check_dataset_source` check code statically at upload time (nothing
runs); `load_user_code` imports it and returns the user's classes, turning every import
failure into a FlautimError that names the file and line.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from flautim.fl.api import Dataset, Experiment
from flautim.fl.errors import USER_CODE, FlautimError, user_code_error
from flautim.fl.hyperparameters import Hyperparameters, load_hyperparameters

CODE_FILES = ("dataset.py", "api.py", "hyperparameters.py")

# Packages the sandbox image provides (for the hint when an import fails).
IMAGE_PACKAGES = "torch, numpy, flwr, scikit-learn (sklearn), mlxtend, safetensors"


@dataclass(frozen=True)
class Bundle:
    """An experiment bundle folder (see the module docstring)."""

    root: Path

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        """Open the bundle at `path`; FlautimError names the first missing part."""
        root = Path(path).resolve()
        if not root.is_dir():
            raise FlautimError(
                f"the experiment folder {path} does not exist", where=str(path),
                hint="pass the folder that holds dataset.py, api.py and hyperparameters.py",
            )
        for name in CODE_FILES:
            if not (root / name).is_file():
                raise FlautimError(
                    f"the experiment has no {name}", where=name,
                    hint="an experiment needs dataset.py, api.py, hyperparameters.py and a data/ folder",
                    code="bundle.missing_file", params={"name": name},
                )
        return cls(root)

    @classmethod
    def load_dataset_folder(cls, path: str | Path) -> Bundle:
        """Open a stored dataset (dataset.py + data/, no api.py): enough to inspect it."""
        root = Path(path).resolve()
        if not (root / "dataset.py").is_file():
            raise FlautimError(
                "the dataset has no dataset.py", where="dataset.py",
                hint="a dataset is a dataset.py defining a flautim.fl.Dataset subclass plus a data/ folder",
            )
        return cls(root)

    @property
    def dataset_py(self) -> Path:
        return self.root / "dataset.py"

    @property
    def api_py(self) -> Path:
        return self.root / "api.py"

    @property
    def hyperparameters_py(self) -> Path:
        return self.root / "hyperparameters.py"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def hyperparameters(self) -> Hyperparameters:
        """The checked hyperparameters.py of this bundle."""
        return load_hyperparameters(self.hyperparameters_py)

    def code_hash(self) -> str:
        """SHA-256 over the code files (dataset.py, api.py, hyperparameters.py), hex."""
        digest = hashlib.sha256()
        for name in CODE_FILES:
            path = self.root / name
            digest.update(name.encode() + b"\0")
            digest.update(path.read_bytes() if path.is_file() else b"")
            digest.update(b"\0")
        return digest.hexdigest()


# --- static checks (upload time; nothing is executed) -------------------------------------


def _syntax(source: str, filename: str) -> tuple[ast.Module | None, list[FlautimError]]:
    try:
        return ast.parse(source, filename=filename), []
    except SyntaxError as exc:
        text = f" in `{exc.text.strip()}`" if exc.text else ""
        return None, [
            FlautimError(
                f"syntax error: {exc.msg}{text}",
                where=f"{filename}:{exc.lineno}" if exc.lineno else filename,
                hint="fix the line (check parentheses, colons and indentation)",
                code="bundle.syntax", params={"detail": f"{exc.msg}{text}"},
            )
        ]


def _subclasses(tree: ast.Module, base: str) -> list[ast.ClassDef]:
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for b in node.bases:
                name = b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                if name == base:
                    found.append(node)
    return found


def check_api_source(source: str, filename: str = "api.py") -> list[FlautimError]:
    """Problems found in api.py without running it: syntax (with line), no Experiment
    subclass, no training_loop/validation_loop, no model (a `Model` class or
    `build_model`). An empty list means it looks fine."""
    tree, errors = _syntax(source, filename)
    if tree is None:
        return errors
    experiments = _subclasses(tree, "Experiment")
    if not experiments:
        return [
            FlautimError(
                "api.py defines no subclass of Experiment", where=filename,
                hint="add `from flautim.fl import Experiment` and `class MyExperiment(Experiment): ...`",
                code="bundle.no_experiment_class",
            )
        ]
    cls = experiments[-1]
    methods = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for required in ("training_loop", "validation_loop"):
        if required not in methods:
            errors.append(
                FlautimError(
                    f"class {cls.name} has no {required}(self, data_loader) method",
                    where=f"{filename}:{cls.lineno}",
                    hint=f"define {required}(self, data_loader) returning (loss, metrics_dict)",
                    code="bundle.missing_loop", params={"cls": cls.name, "method": required},
                )
            )
    has_model = "build_model" in methods or any(
        isinstance(n, ast.ClassDef) and n.name == "Model" for n in tree.body
    ) or any(
        isinstance(n, (ast.Assign, ast.ImportFrom, ast.Import)) and "Model" in _bound_names(n)
        for n in tree.body
    )
    if not has_model:
        errors.append(
            FlautimError(
                "api.py defines no model", where=filename,
                hint="define `class Model(torch.nn.Module)` or a build_model(self) method in your Experiment",
                code="bundle.no_model",
            )
        )
    return errors


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {(a.asname or a.name).split(".")[0] for a in node.names}  # type: ignore[attr-defined]


def check_dataset_source(source: str, filename: str = "dataset.py") -> list[FlautimError]:
    """Problems found in dataset.py without running it: syntax (with line), no Dataset
    subclass, no train()/validation()."""
    tree, errors = _syntax(source, filename)
    if tree is None:
        return errors
    datasets = _subclasses(tree, "Dataset")
    if not datasets:
        return [
            FlautimError(
                "dataset.py defines no subclass of Dataset", where=filename,
                hint="add `from flautim.fl import Dataset` and `class MyDataset(Dataset): ...`",
                code="bundle.no_dataset_class",
            )
        ]
    cls = datasets[-1]
    methods = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    for required in ("train", "validation"):
        if required not in methods:
            errors.append(
                FlautimError(
                    f"class {cls.name} has no {required}(self) method",
                    where=f"{filename}:{cls.lineno}",
                    hint=f"define {required}(self) returning a map-style torch dataset",
                    code="bundle.missing_split", params={"cls": cls.name, "method": required},
                )
            )
    return errors


# --- importing user code --------------------------------------------------------------------


@dataclass
class UserCode:
    """The user's modules and the classes the platform instantiates."""

    bundle: Bundle
    dataset_module: ModuleType
    api_module: ModuleType
    dataset_class: type[Dataset]
    experiment_class: type[Experiment]


_import_lock = threading.Lock()


def _import_file(bundle: Bundle, name: str) -> ModuleType:
    path = bundle.root / name
    stem = Path(name).stem
    module_name = f"flautim_bundle_{bundle.code_hash()[:12]}_{stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # The bundle folder goes on sys.path so api.py can `from dataset import ...` or import
    # helper modules the user ships next to it.
    root = str(bundle.root)
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[module_name]
        raise _import_error(exc, bundle, name) from None
    return module


def _import_error(exc: BaseException, bundle: Bundle, name: str) -> FlautimError:
    if isinstance(exc, FlautimError):
        return exc
    if isinstance(exc, ModuleNotFoundError):
        missing = exc.name or str(exc)
        return user_code_error(
            exc, bundle.root, f"{name} imports the module {missing!r}, which is not installed",
            hint=f"the sandbox image has {IMAGE_PACKAGES}; ship your own modules inside the "
            "experiment folder or ask an administrator to add the package to the image",
            code="user_code.module_not_installed", params={"file": name, "module": missing, "packages": IMAGE_PACKAGES},
        )
    if isinstance(exc, SyntaxError):
        return user_code_error(exc, bundle.root, f"{name} cannot be read",
                               hint="fix the line (check parentheses, colons and indentation)",
                               code="user_code.unreadable", params={"file": name})
    return user_code_error(
        exc, bundle.root, f"importing {name} failed",
        hint="code at module level of your file runs when it is loaded; move work into methods",
        code="user_code.import_failed", params={"file": name},
    )


def _defined_subclass(module: ModuleType, base: type, filename: str) -> type:
    candidates = [
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, base) and obj is not base
        and obj.__module__ == module.__name__
    ]
    if not candidates:
        # Accept one imported from a helper module of the bundle.
        candidates = [
            obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base
        ]
    if len(candidates) != 1:
        found = ", ".join(sorted(c.__name__ for c in candidates)) or "none"
        raise FlautimError(
            f"{filename} must define exactly one subclass of {base.__name__} (found: {found})",
            where=filename, kind=USER_CODE,
            hint=f"keep one `class ...({base.__name__})` in {filename}",
            code="bundle.one_subclass", params={"file": filename, "base": base.__name__, "found": found},
        )
    return candidates[0]


def load_dataset_class(bundle: Bundle) -> tuple[ModuleType, type[Dataset]]:
    """Import dataset.py alone and return (module, the user's Dataset subclass)."""
    with _import_lock:
        module = _import_file(bundle, "dataset.py")
    return module, _defined_subclass(module, Dataset, "dataset.py")


def load_user_code(bundle: Bundle) -> UserCode:
    """Import dataset.py and api.py (under unique module names) and find the user's
    Dataset and Experiment classes. Raises FlautimError with file:line and a hint on a
    syntax error, a missing module, an exception at import, or a missing class."""
    dataset_module, dataset_class = load_dataset_class(bundle)
    with _import_lock:
        api_module = _import_file(bundle, "api.py")
    experiment_class = _defined_subclass(api_module, Experiment, "api.py")
    model_class: Any = getattr(api_module, "Model", None)
    if isinstance(model_class, type) and "_flautim_model_class" not in vars(experiment_class):
        experiment_class._flautim_model_class = model_class  # type: ignore[attr-defined]
    return UserCode(bundle, dataset_module, api_module, dataset_class, experiment_class)
