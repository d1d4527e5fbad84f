"""The round deadline: how long a round waits for a client that does not answer.

Without it a client stuck in an endless `training_loop` (or retrying `fork` under the pids
limit, or flooding its log) holds the run, a worker and every container for the whole time
limit. With it, each train or evaluate phase of a round gives up on the clients that have not
answered by its deadline, counted from when the round's messages were sent:

- `round_deadline_s` when the hyperparameters set it;
- otherwise `round_deadline_multiple` (5) × the time the slowest client that did answer
  took, in this phase of this round — or, while nobody has answered yet, in the same phase of
  the previous round — and never less than `round_deadline_floor_s` (60 s). Before any client
  ever answered (the first round, every client stuck) only the run's own reply timeout holds.

A late client is then dropped, and the run goes on without it, when the strategy allows it
(the clients left still meet its minimums: `fraction_fit`/`fraction_evaluate` below 1, no
differential privacy) and `drop_late_clients` is on; otherwise the round fails with a
`timeout` error. Either way the message names the client and the round.

Grids that support it (the fast transport's `DirectGrid`, the Flower transport's
`BoundedGrid`) have a `round_deadline` attribute the ServerApp sets, and report who was late
in `late` after each `send_and_receive`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_MULTIPLE = 5.0
DEFAULT_FLOOR_S = 60.0


@dataclass
class LateClients:
    """Who had not answered a phase of a round when its deadline passed."""

    phase: str
    node_ids: list[int]
    waited_s: float
    rule: str


@dataclass
class RoundDeadline:
    fixed_s: float | None = None
    multiple: float = DEFAULT_MULTIPLE
    floor_s: float = DEFAULT_FLOOR_S
    # The slowest answer of the last round, per phase ("train", "evaluate").
    _previous: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_hyperparameters(cls, hyperparameters: Any) -> RoundDeadline:
        def value(name: str, default: Any) -> Any:
            found = getattr(hyperparameters, name, default)
            return default if found is None else found

        return cls(
            fixed_s=getattr(hyperparameters, "round_deadline_s", None),
            multiple=float(value("round_deadline_multiple", DEFAULT_MULTIPLE)),
            floor_s=float(value("round_deadline_floor_s", DEFAULT_FLOOR_S)),
        )

    def limit_s(self, phase: str, answered_s: list[float]) -> float | None:
        """Seconds after sending by which every client must have answered; None: no deadline
        yet. `answered_s` holds how long each client that already answered took."""
        if self.fixed_s:
            return float(self.fixed_s)
        reference = max(answered_s) if answered_s else self._previous.get(phase)
        if reference is None:
            return None
        return max(self.floor_s, self.multiple * reference)

    def rule(self, phase: str, answered_s: list[float]) -> str:
        """The deadline in words, for the error or warning that names a late client."""
        limit = self.limit_s(phase, answered_s)
        if self.fixed_s:
            return f"round_deadline_s = {self.fixed_s:g} s"
        if answered_s:
            basis = f"the {max(answered_s):.1f} s the slowest other client took"
        else:
            basis = f"the {self._previous.get(phase, 0.0):.1f} s the slowest client took in the previous round"
        return (
            f"{limit:.0f} s: {self.multiple:g} × {basis}, at least round_deadline_floor_s = {self.floor_s:g} s"
        )

    def record(self, phase: str, answered_s: list[float]) -> None:
        """Remember the phase's slowest answer for the next round's phase."""
        if answered_s:
            self._previous[phase] = max(answered_s)


def phase_of(message_type: str) -> str:
    """"train" or "evaluate" from a Flower message type ("train", "train.custom", ...)."""
    return str(message_type).split(".", 1)[0]
