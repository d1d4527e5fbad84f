"""Which of your hyperparameters the run read, and which it ignored (maybe misspelled).

A key of hyperparameters.py the platform does not know (`Hyperparameters.extra`) is handed
to your code as is. When neither the platform nor your code reads it — `dirichlet_alpha =
1.0`, say, where the Dirichlet alpha is `partitioning_options = {"alpha": 1.0}` — it changes
nothing, silently. So the dict your code receives (`Dataset(data_dir, hyperparameters)`,
`Experiment.hyperparameters`) notes every key read from it, each process of the run
reports what it read (prepare in `READS_FILE` beside the server's data, clients in their
replies), and the server names each unread key once the run completed, as a `warning`
event with `code` IGNORED_CODE and the closest right spelling when one is close.

Reading all keys at once (iterating, `items()`, `dict(hp)`, `**hp`) counts as reading every
key: a false "ignored" would send the user hunting for a typo that is not there.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flautim.fl.error_codes import coded_fields, help_for
from flautim.fl.hyperparameters import ALIASES, KNOWN_KEYS, Hyperparameters
from flautim.fl.partition import option_names

IGNORED_CODE = "hyperparameters.ignored_key"
# Written by prepare into the server's data folder: the keys its Dataset read.
READS_FILE = "hyperparameters-read.json"
# How close a spelling must be to be suggested (difflib's ratio): "dirichlet_alfa" is
# 0.93 from "dirichlet_alpha", "lerning_rate" 0.96 from "learning_rate"; unrelated names of
# the same length score 0.3-0.6.
SUGGESTION_CUTOFF = 0.75
# What a reply or the reads file may carry (a run's own keys; anything past it is hostile).
MAX_KEYS = 200
MAX_KEY_LENGTH = 100

_read: set[str] = set()


def note(key: Any) -> None:
    if isinstance(key, str):
        _read.add(key)


def note_all(keys: Iterable[Any]) -> None:
    for key in keys:
        note(key)


def keys_read() -> set[str]:
    """Every key read in this process so far (and those other processes reported)."""
    return set(_read)


def forget() -> None:
    """Start afresh (a process that runs several experiments, e.g. tests)."""
    _read.clear()


class TrackedHyperparameters(dict):
    """The dict of hyperparameters your code receives: a plain dict that notes the keys
    read from it."""

    def __getitem__(self, key: Any) -> Any:
        note(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        note(key)
        return super().get(key, default)

    def __contains__(self, key: Any) -> bool:
        note(key)
        return super().__contains__(key)

    def pop(self, key: Any, *default: Any) -> Any:
        note(key)
        return super().pop(key, *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        note(key)
        return super().setdefault(key, default)

    def __iter__(self):
        note_all(dict.keys(self))
        return super().__iter__()

    def keys(self):
        note_all(dict.keys(self))
        return super().keys()

    def values(self):
        note_all(dict.keys(self))
        return super().values()

    def items(self):
        note_all(dict.keys(self))
        return super().items()

    def copy(self) -> TrackedHyperparameters:
        """A copy that goes on noting reads (`Dataset.__init__` keeps one)."""
        return TrackedHyperparameters(dict.items(self))


def tracked(values: dict[str, Any]) -> TrackedHyperparameters:
    return TrackedHyperparameters(values)


def user_keys_read(hp: Hyperparameters) -> list[str]:
    """The run's own keys (not the platform's) read in this process: what a reply carries."""
    return sorted(k for k in keys_read() if k in hp.extra)[:MAX_KEYS]


def note_reported(value: Any) -> None:
    """Add keys another process reported (a client's reply, prepare's file: a list, or its
    JSON text): hostile data."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return
    if isinstance(value, list):
        note_all(k for k in value[:MAX_KEYS] if isinstance(k, str) and len(k) <= MAX_KEY_LENGTH)


def write_reads(hp: Hyperparameters, folder: Path) -> None:
    """prepare's part: the run's own keys its Dataset read, for the server to count."""
    (Path(folder) / READS_FILE).write_text(json.dumps(user_keys_read(hp)))


def read_reads(folder: Path | None) -> None:
    if folder is None:
        return
    try:
        note_reported((Path(folder) / READS_FILE).read_text(encoding="utf-8")[:100_000])
    except (OSError, UnicodeDecodeError):
        pass


def ignored_warnings(hp: Hyperparameters) -> list[dict[str, Any]]:
    """One `warning` event's fields per key of hyperparameters.py that nothing read."""
    read = keys_read()
    warnings = []
    for key in sorted(hp.extra):
        if key in read:
            continue
        line = hp.lines.get(key)
        where = f"hyperparameters.py:{line}" if line else "hyperparameters.py"
        suggestion = suggest(key, hp.extra[key], hp)
        params = {"key": key, "where": where, **({"suggestion": suggestion} if suggestion else {})}
        warnings.append({
            "message": f"{where}: `{key}` was read neither by the platform nor by your code: the run ignored it",
            "hint": f"did you mean `{suggestion}`?" if suggestion else
            "check the name against the hyperparameters the platform accepts, or read it in your code",
            "where": where,
            **coded_fields(IGNORED_CODE, params, help_for(IGNORED_CODE)),
        })
    return warnings


def suggest(key: str, value: Any, hp: Hyperparameters) -> str | None:
    """The closest right spelling of `key`, written as the line to put in hyperparameters.py
    (`learning_rate`, `partitioning_options = {"alpha": 1.0}`), or None."""
    candidates = _spellings(value, hp)
    close = difflib.get_close_matches(key.lower(), list(candidates), n=1, cutoff=SUGGESTION_CUTOFF)
    return candidates[close[0]] if close else None


def _spellings(value: Any, hp: Hyperparameters) -> dict[str, str]:
    """Names a user may have meant -> the right way to write them."""
    spellings = {name: name for name in KNOWN_KEYS}
    spellings.update(ALIASES)
    shown = repr(value)[:40]
    # Options of the partitioning methods, under the names people give them.
    for method, options in option_names().items():
        for option in options:
            line = f"partitioning_options = {{{option!r}: {shown}}}".replace("'", '"')
            if method != hp.partitioning:
                line = f'partitioning = "{method}" and {line}'
            for name in (f"{method}_{option}", f"partition_{option}", f"partitioning_{option}", option):
                spellings.setdefault(name, line)
    for option, group in (("proximal_mu", "strategy_options"), ("noise_multiplier", "differential_privacy"),
                          ("clipping_norm", "differential_privacy"), ("keep_last", "checkpoint"),
                          ("best_metric", "checkpoint")):
        spellings.setdefault(option, f"{group} = {{{option!r}: {shown}}}".replace("'", '"'))
    return spellings
