"""A run's settings as its processes read them: the bundle's hyperparameters.py with the
command line's `--clients/--rounds`, and the limits every wait of the run is bounded by.

Supervisors read the limits before `prepare` has checked the file, so `run_limits` and
`peek` never raise: a broken hyperparameters.py gets defaults here and `prepare` reports it
with its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flautim.fl.hyperparameters import Hyperparameters, load_hyperparameters

# The whole run's limit when the experiment sets no time_limit_s.
DEFAULT_RUN_LIMIT_S = 6 * 3600.0
# The bounded wait for clients when hyperparameters.py cannot be read (its own default is
# min_clients_wait_s).
DEFAULT_CLIENTS_WAIT_S = 60.0


def hyperparameters_file(bundle_dir: Path) -> Path:
    return Path(bundle_dir) / "hyperparameters.py"


def load_run_hyperparameters(bundle_dir: Path, clients: int | None = None, rounds: int | None = None) -> Hyperparameters:
    """The run's hyperparameters: the bundle's file, with `--clients/--rounds` when given.

    Raises the file's FlautimError (with its line) when it is broken.
    """
    hp = load_hyperparameters(hyperparameters_file(bundle_dir))
    overrides = {"num_clients": clients, "rounds": rounds}
    if any(v is not None for v in overrides.values()):
        hp = hp.with_overrides(filename="command line", **overrides)
    return hp


def peek(bundle_dir: Path, key: str, default: Any) -> Any:
    """One value of the bundle's hyperparameters.py (`default` if unreadable)."""
    try:
        return load_hyperparameters(hyperparameters_file(bundle_dir)).get(key, default)
    except Exception:  # noqa: BLE001 - prepare reports a broken file with its line
        return default


@dataclass(frozen=True)
class RunLimits:
    time_limit_s: float  # the whole run
    clients_wait_s: float  # how long the server waits for its clients to connect


def run_limits(bundle_dir: Path) -> RunLimits:
    """The run's limits from hyperparameters.py (defaults if unreadable)."""
    try:
        hp = load_hyperparameters(hyperparameters_file(bundle_dir))
    except Exception:  # noqa: BLE001 - prepare reports a broken file with its line
        return RunLimits(DEFAULT_RUN_LIMIT_S, DEFAULT_CLIENTS_WAIT_S)
    limit = float(hp.time_limit_s) if hp.time_limit_s else DEFAULT_RUN_LIMIT_S
    return RunLimits(limit, float(hp.min_clients_wait_s))
