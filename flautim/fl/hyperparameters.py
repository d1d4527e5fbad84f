"""hyperparameters.py: read by `ast`, never executed.

The file holds module-level assignments of literals only:

    rounds = 20
    learning_rate = 1e-3
    partitioning = "dirichlet"
    partitioning_options = {"alpha": 0.5}
    my_dropout = 0.2          # unknown keys are handed to your code

Known keys are checked for type and range before the run starts; unknown keys go to
`Hyperparameters.extra` (and to your Dataset and Experiment in `hyperparameters`). Any other
statement (imports, function calls, arithmetic, loops) is refused with the line and a hint.
Spellings of the published Flautim library are accepted as aliases (see `ALIASES`).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flautim.fl.error_codes import coded_fields, help_for
from flautim.fl.errors import HYPERPARAMETERS, FlautimError
from flautim.fl.partition import PartitionError, check_partition_options

STRATEGIES = (
    "FedAvg", "FedAvgM", "FedProx", "FedAdam", "FedYogi", "FedAdagrad",
    "FedMedian", "FedTrimmedAvg", "Krum", "Bulyan", "QFedAvg",
)  # fmt: skip
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
PARTITIONINGS = ("iid", "dirichlet", "pathological", "shards", "size_skew")
DEVICES = ("cpu", "cuda", "auto")
TRANSPORTS = ("fast", "flower")

# Other spellings users bring from the published library and Flower's own names.
ALIASES = {
    "num_rounds": "rounds",
    "server_rounds": "rounds",
    "clients": "num_clients",
    "n_clients": "num_clients",
    "fraction_train": "fraction_fit",
    "epochs": "local_epochs",
    "local_epoch": "local_epochs",
    "lr": "learning_rate",
    "optim": "optimizer",
    "partition": "partitioning",
    "batchsize": "batch_size",
}


class HyperparameterError(FlautimError):
    """A hyperparameters.py that cannot be used: names the file, the line and the key."""

    def __init__(
        self, what: str, filename: str, line: int | None, hint: str = "",
        code: str | None = None, params: dict[str, Any] | None = None,
    ) -> None:
        self.line = line
        where = f"{filename}:{line}" if line else filename
        super().__init__(what, where=where, hint=hint, kind=HYPERPARAMETERS, code=code, params=params)


@dataclass
class Hyperparameters:
    """The run's settings, checked. Every field has a default; `extra` holds your own keys."""

    rounds: int = 10
    num_clients: int = 4
    fraction_fit: float = 1.0
    fraction_evaluate: float = 1.0
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    strategy: str = "FedAvg"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    differential_privacy: dict[str, Any] | None = None
    partitioning: str = "iid"
    partitioning_options: dict[str, Any] = field(default_factory=dict)
    client_validation_fraction: float = 0.1
    seed: int = 42
    device: str = "cpu"
    # How server and clients talk: "fast" (a direct channel between warm processes) or
    # "flower" (a stock Flower deployment: a SuperLink and one SuperNode per client).
    transport: str = "fast"
    checkpoint: dict[str, Any] = field(
        default_factory=lambda: {"keep_last": 2, "best_metric": "loss", "mode": "min"}
    )
    time_limit_s: float | None = None
    min_clients_wait_s: float = 60.0
    # A round stops waiting for a client that has not answered by its deadline: this many
    # seconds, or (None) round_deadline_multiple × the slowest answering client's time, at
    # least round_deadline_floor_s. The late client is dropped when the strategy can go on
    # without it and drop_late_clients is on, else the round fails (flautim/fl/round_deadline.py).
    round_deadline_s: float | None = None
    round_deadline_multiple: float = 5.0
    round_deadline_floor_s: float = 60.0
    drop_late_clients: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    # Not settings: notes for the user (e.g. "did you mean ...?"), each a `warning` event's
    # fields (message, hint, where, code, params), and where each key was set.
    warnings: list[dict[str, Any]] = field(default_factory=list, compare=False, repr=False)
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Every value, known keys and your own (`extra`) together: what user code receives."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for internal in ("extra", "warnings", "lines"):
            values.pop(internal)
        return {**self.extra, **values}

    def with_overrides(self, filename: str = "overrides", **values: Any) -> Hyperparameters:
        """A copy with `values` replaced (e.g. `num_clients` from `flautim run --clients`),
        checked like the file's values."""
        merged = {**self.to_dict(), **{k: v for k, v in values.items() if v is not None}}
        return _build(merged, {k: self.lines.get(k, 0) for k in merged}, filename)

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)


KNOWN_KEYS = tuple(
    f.name for f in dataclasses.fields(Hyperparameters) if f.name not in ("extra", "warnings", "lines")
)

_HINT_LITERALS = (
    "hyperparameters.py is read, not executed: write only assignments of literal values "
    "(numbers, strings, True/False/None, lists, tuples and dicts of them), e.g. `rounds = 10`"
)


def load_hyperparameters(path: str | Path) -> Hyperparameters:
    """Read and check a hyperparameters.py file (see `parse_hyperparameters`)."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HyperparameterError(
            "the file hyperparameters.py is missing", path.name, None,
            "add a hyperparameters.py with at least `rounds = 10`", code="hyperparameters.missing_file",
        ) from None
    except UnicodeDecodeError as exc:
        raise HyperparameterError(
            f"the file is not UTF-8 text ({exc.reason})", path.name, None,
            "save hyperparameters.py as UTF-8",
        ) from None
    return parse_hyperparameters(source, filename=path.name)


def parse_hyperparameters(source: str, filename: str = "hyperparameters.py") -> Hyperparameters:
    """Parse the text of a hyperparameters.py without executing it, and check it.

    Raises HyperparameterError naming the file, the line and what is wrong, with a hint:
    a syntax error, a statement that is not `name = literal`, a known key with a value of
    the wrong type or out of range.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise HyperparameterError(
            f"syntax error: {exc.msg}", filename, exc.lineno, _HINT_LITERALS,
            code="hyperparameters.syntax", params={"detail": exc.msg},
        ) from None
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
            node.value.value, str
        ):
            continue  # a docstring or a string used as a comment
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            raise HyperparameterError(
                f"`{_snippet(source, node)}` is not an assignment of a literal "
                f"({type(node).__name__} statements are not allowed)",
                filename, node.lineno, _statement_hint(node),
                code="hyperparameters.not_assignment",
                params={"statement": _snippet(source, node), "kind": type(node).__name__},
            )
        for target in targets:
            if not isinstance(target, ast.Name):
                raise HyperparameterError(
                    f"`{_snippet(source, node)}`: only simple names can be assigned",
                    filename, node.lineno, "write `name = value`, one name per line",
                    code="hyperparameters.not_simple_name", params={"statement": _snippet(source, node)},
                )
            try:
                literal = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise HyperparameterError(
                    f"the value of `{target.id}` is not a literal: `{_snippet(source, value)}`",
                    filename, node.lineno, _value_hint(value),
                    code="hyperparameters.not_literal", params={"key": target.id, "value": _snippet(source, value)},
                ) from None
            key = ALIASES.get(target.id, target.id)
            if key in values and lines.get(key) != node.lineno and key != target.id:
                raise HyperparameterError(
                    f"`{target.id}` is another name for `{key}`, already set on line {lines[key]}",
                    filename, node.lineno, "set it once",
                    code="hyperparameters.alias_twice", params={"name": target.id, "key": key, "line": lines[key]},
                )
            values[key] = literal
            lines[key] = node.lineno
        del index
    return _build(values, lines, filename)


def _snippet(source: str, node: ast.AST) -> str:
    text = ast.get_source_segment(source, node) or type(node).__name__
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _statement_hint(node: ast.AST) -> str:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "imports are not allowed: " + _HINT_LITERALS
    if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
        return "put functions and classes in api.py; " + _HINT_LITERALS
    return _HINT_LITERALS


def _value_hint(value: ast.AST) -> str:
    if isinstance(value, ast.BinOp):
        return "arithmetic is not evaluated: write the result (e.g. `1e-3`, not `1/1000`)"
    if isinstance(value, ast.Name):
        return f"`{value.id}` is a name, not a value: write the value itself, or quote it as a string"
    if isinstance(value, ast.Call):
        return "function calls are not evaluated: " + _HINT_LITERALS
    return _HINT_LITERALS


def _build(values: dict[str, Any], lines: dict[str, int], filename: str) -> Hyperparameters:
    checked: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    warnings: list[dict[str, Any]] = []
    for key, value in values.items():
        line = lines.get(key) or None
        if key in _CHECKS:
            checked[key] = _CHECKS[key](key, value, filename, line)
        else:
            extra[key] = value
            close = difflib.get_close_matches(key, list(KNOWN_KEYS) + list(ALIASES), n=1, cutoff=0.8)
            if close:
                where = f"{filename}:{line}" if line else filename
                suggestion = ALIASES.get(close[0], close[0])
                code = "hyperparameters.unknown_key"
                warnings.append({
                    "message": f"{where}: unknown key `{key}` is passed to your code as is; "
                    f"did you mean `{suggestion}`?",
                    "hint": "",
                    "where": where,
                    **coded_fields(code, {"key": key, "suggestion": suggestion}, help_for(code)),
                })
    hp = Hyperparameters(**checked, extra=extra, warnings=warnings, lines=dict(lines))
    _check_together(hp, filename)
    return hp


# --- checks of single keys -----------------------------------------------------------------


def _fail(
    key: str, value: Any, expected: str, filename: str, line: int | None, hint: str = "",
    code: str | None = None, **params: Any,
) -> None:
    """`params` are the code's besides key, got (the value) and example."""
    example = _example(key)
    raise HyperparameterError(
        f"`{key}` must be {expected}, got {value!r}", filename, line, hint or f"e.g. `{key} = {example}`",
        code=code, params={"key": key, "got": repr(value), "example": example, **params},
    )


def _example(key: str) -> str:
    default = dataclasses.asdict(Hyperparameters()).get(key)
    return repr(default)


def _int(low: int, high: int):
    def check(key: str, value: Any, filename: str, line: int | None) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            _fail(key, value, f"a whole number from {low} to {high}", filename, line,
                  code="hyperparameters.integer_range", low=low, high=high)
        return value

    return check


def _float(low: float, high: float, low_open: bool = False):
    def check(key: str, value: Any, filename: str, line: int | None) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            ok = (value > low if low_open else value >= low) and value <= high
        if not ok:
            bound = f"greater than {low}" if low_open else f"at least {low}"
            _fail(key, value, f"a number {bound} and at most {high}", filename, line,
                  code="hyperparameters.number_above" if low_open else "hyperparameters.number_range",
                  low=low, high=high)
        return float(value)

    return check


def _choice(options: tuple[str, ...], case_sensitive: bool = False):
    def check(key: str, value: Any, filename: str, line: int | None) -> str:
        if isinstance(value, str):
            for option in options:
                if value == option or (not case_sensitive and value.lower() == option.lower()):
                    return option
        close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(options)}"
        listed = ", ".join(repr(o) for o in options)
        suggestion = {"suggestion": repr(close[0])} if close else {}
        _fail(key, value, "one of " + listed, filename, line, hint, code="hyperparameters.choice",
              options=listed, **suggestion)
        return ""

    return check


def _bool(key: str, value: Any, filename: str, line: int | None) -> bool:
    if not isinstance(value, bool):
        _fail(key, value, "True or False", filename, line, code="hyperparameters.boolean")
    return value


def _dict(key: str, value: Any, filename: str, line: int | None) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        _fail(key, value, "a dict with string keys", filename, line, f'e.g. `{key} = {{"name": 1}}`',
              code="hyperparameters.dictionary")
    return dict(value)


def _optional_seconds(key: str, value: Any, filename: str, line: int | None) -> float | None:
    if value is None:
        return None
    return _float(0.0, 7 * 24 * 3600, low_open=True)(key, value, filename, line)


def _differential_privacy(key: str, value: Any, filename: str, line: int | None) -> dict | None:
    if value is None or value is False:
        return None
    options = _dict(key, value, filename, line)
    allowed = {"noise_multiplier", "clipping_norm", "num_sampled_clients"}
    sample = 'differential_privacy = {"noise_multiplier": 1.0, "clipping_norm": 1.0, "num_sampled_clients": 4}'
    hint = f"e.g. `{sample}`"
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise HyperparameterError(
            f"`differential_privacy` has unknown option(s) {', '.join(unknown)}", filename, line, hint,
            code="hyperparameters.unknown_options",
            params={"key": key, "options": ", ".join(unknown), "sample": sample},
        )
    missing = sorted(allowed - set(options))
    if missing:
        raise HyperparameterError(
            f"`differential_privacy` lacks {', '.join(missing)}", filename, line, hint,
            code="hyperparameters.missing_options",
            params={"key": key, "options": ", ".join(missing), "sample": sample},
        )
    options["noise_multiplier"] = _float(0.0, 100.0)("differential_privacy.noise_multiplier", options["noise_multiplier"], filename, line)
    options["clipping_norm"] = _float(0.0, 1e6, low_open=True)("differential_privacy.clipping_norm", options["clipping_norm"], filename, line)
    options["num_sampled_clients"] = _int(1, 100_000)("differential_privacy.num_sampled_clients", options["num_sampled_clients"], filename, line)
    return options


# Parts of a metric's name that mark it as better when lower: losses and errors (MSE, MAE,
# RMSE, MAPE, "mean_squared_error"), perplexity. Everything else (accuracy, f1, auc, r2) is
# better when higher.
LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "mape", "perplexity")


def metric_mode(name: str) -> str:
    """Which way a metric improves, from its name: "min" for losses and errors (`loss`,
    `mse`, `mae`, `rmse`, `val_error`), "max" for the rest (`accuracy`, `f1`, `auc`). The
    checkpoint's `best_metric` and the platform's headline metric both follow it, unless
    `checkpoint["mode"]` says otherwise."""
    lowered = name.lower()
    return "min" if any(part in lowered for part in LOWER_IS_BETTER) else "max"


def _checkpoint(key: str, value: Any, filename: str, line: int | None) -> dict[str, Any]:
    options = _dict(key, value, filename, line)
    allowed = {"keep_last", "best_metric", "mode"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        sample = 'checkpoint = {"keep_last": 2, "best_metric": "accuracy", "mode": "max"}'
        raise HyperparameterError(
            f"`checkpoint` has unknown option(s) {', '.join(unknown)}", filename, line, f"e.g. `{sample}`",
            code="hyperparameters.unknown_options",
            params={"key": key, "options": ", ".join(unknown), "sample": sample},
        )
    result = {"keep_last": 2, "best_metric": "loss", "mode": "min"}
    if "best_metric" in options and "mode" not in options:
        result["mode"] = metric_mode(str(options["best_metric"]))
    result.update(options)
    result["keep_last"] = _int(0, 1000)("checkpoint.keep_last", result["keep_last"], filename, line)
    if result["best_metric"] is not None and not (
        isinstance(result["best_metric"], str) and result["best_metric"]
    ):
        _fail("checkpoint.best_metric", result["best_metric"], "a metric name or None", filename, line)
    result["mode"] = _choice(("min", "max"))("checkpoint.mode", result["mode"], filename, line)
    return result


_CHECKS = {
    "rounds": _int(1, 10_000),
    "num_clients": _int(1, 10_000),
    "fraction_fit": _float(0.0, 1.0, low_open=True),
    "fraction_evaluate": _float(0.0, 1.0),
    "local_epochs": _int(1, 1000),
    "batch_size": _int(1, 65_536),
    "learning_rate": _float(0.0, 10.0, low_open=True),
    "optimizer": _choice(OPTIMIZERS),
    "momentum": _float(0.0, 0.999),
    "weight_decay": _float(0.0, 1.0),
    "strategy": _choice(STRATEGIES),
    "strategy_options": _dict,
    "differential_privacy": _differential_privacy,
    "partitioning": _choice(PARTITIONINGS),
    "partitioning_options": _dict,
    "client_validation_fraction": _float(0.0, 0.9),
    "seed": _int(0, 2**32 - 1),
    "device": _choice(DEVICES),
    "transport": _choice(TRANSPORTS),
    "checkpoint": _checkpoint,
    "time_limit_s": _optional_seconds,
    "min_clients_wait_s": _float(0.0, 24 * 3600, low_open=True),
    "round_deadline_s": _optional_seconds,
    "round_deadline_multiple": _float(1.0, 1000.0),
    "round_deadline_floor_s": _float(0.0, 7 * 24 * 3600, low_open=True),
    "drop_late_clients": _bool,
}


def check_value(key: str, value: Any, filename: str = "hyperparameters.py") -> Any:
    """`value` as the runtime accepts it for `key` (e.g. `num_clients`), else a
    HyperparameterError saying what it must be: the platform checks stored values with the
    runtime's own rules."""
    return _CHECKS[key](key, value, filename, None)


def _check_together(hp: Hyperparameters, filename: str) -> None:
    """Checks that involve several keys (each error names the line of the later key)."""
    try:
        check_partition_options(hp.partitioning, hp.partitioning_options)
    except PartitionError as exc:
        line = hp.lines.get("partitioning_options") or hp.lines.get("partitioning")
        raise HyperparameterError(exc.what, filename, line, exc.hint, code=exc.code, params=exc.params) from None
    dp = hp.differential_privacy
    if dp is not None and dp["num_sampled_clients"] > hp.num_clients:
        raise HyperparameterError(
            f"differential_privacy.num_sampled_clients ({dp['num_sampled_clients']}) is larger "
            f"than num_clients ({hp.num_clients})",
            filename, hp.lines.get("differential_privacy"),
            "sample at most num_clients clients per round",
            code="hyperparameters.dp_more_than_clients",
            params={"sampled": dp["num_sampled_clients"], "clients": hp.num_clients},
        )
