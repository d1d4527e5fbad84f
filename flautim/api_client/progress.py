"""Rendering a run's progress in the terminal from the API's events: a bar with round r/N,
the latest loss and headline metric (flautim.headline: the experiment's, once the API names
it), and warnings, errors and diagnoses as they come."""

from __future__ import annotations

import sys
from typing import TextIO

from flautim.headline import Headline, headline_metric, stored
from flautim.live_messages import score

BAR_WIDTH = 30


def _printable(value: object) -> str:
    """Text from a run (hostile) without the control characters a terminal would obey."""
    return "".join(ch for ch in str(value or "") if ch == "\n" or ch.isprintable())


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class ProgressView:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.loss: float | None = None
        self.metric: str | None = None
        self.metric_value: float | None = None
        # The experiment's headline metric as the API names it (it knows the checkpoint's
        # best_metric); until then, the rule applied to the names the run reported.
        self._named: Headline | None = None
        self._reported: dict[str, None] = {}
        self.round = 0
        self.rounds = 0
        self.state = ""
        self._last_line = ""
        self._headline: dict = {}

    def feed(self, event: dict) -> None:
        """Update from one event of /events (type + payload)."""
        kind, payload = event.get("type"), event.get("payload") or {}
        if kind == "run_started":
            self.rounds = int(_number(payload.get("rounds")) or self.rounds)
        elif kind == "round_started":
            self.round = max(self.round, int(_number(payload.get("round")) or 0) - 1)
        elif kind in ("central_evaluate", "aggregated"):
            if kind == "aggregated" and payload.get("phase") != "evaluate":
                return
            self.round = max(self.round, int(_number(payload.get("round")) or 0))
            metrics = payload.get("metrics")
            if isinstance(metrics, dict):
                self._reported.update(dict.fromkeys(str(name)[:64] for name in list(metrics)[:100]))
            score(self._headline, {**payload, "type": kind}, self._named or headline_metric(None, self._reported))
            self.loss = self._headline.get("loss")
            self.metric, self.metric_value = self._headline.get("metric"), self._headline.get("metric_value")
        elif kind in ("warning", "error", "diagnosis"):
            self._problem(kind, event.get("message"), payload)

    def _problem(self, kind: str, shown: object, payload: dict) -> None:
        """A warning or error as the API rendered it in the user's language (`message`),
        else as the run wrote it."""
        if not isinstance(shown, dict):
            what = payload.get("what" if kind == "error" else "message", "")
            shown = {"what": what, "where": payload.get("where") or "", "hint": payload.get("hint") or ""}
        what, where, hint = (_printable(shown.get(key)) for key in ("what", "where", "hint"))
        if kind == "warning":
            self.message(f"aviso: {where + ': ' if where and not what.startswith(where) else ''}{what}")
            return
        if kind == "diagnosis":  # what the platform saw in the curves (flautim/diagnosis.py)
            self.message(f"diagnóstico: {what}")
            if hint:
                self.message(f"  o que tentar: {hint}")
            return
        self.message(f"erro: {what}{f' ({where})' if where else ''}")
        if hint:
            self.message(f"  dica: {hint}")

    def update_experiment(self, experiment: dict) -> None:
        self.state = str(experiment.get("state", ""))
        self.rounds = int(experiment.get("rounds_total") or self.rounds or 0)
        self.round = max(self.round, int(experiment.get("rounds_done") or 0))
        named = experiment.get("headline_metric")
        if isinstance(named, dict):
            self._named = stored({"metric": named.get("name"), "metric_mode": named.get("mode")}) or self._named

    def line(self) -> str:
        total = max(self.rounds, 1)
        done = min(self.round, total)
        filled = int(BAR_WIDTH * done / total)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        text = f"[{bar}] rodada {self.round}/{self.rounds or '?'}"
        if self.loss is not None:
            text += f"  loss {self.loss:.4f}"
        if self.metric_value is not None and self.metric != "loss":
            shown = f"{self.metric_value:.2%}" if "acc" in str(self.metric).lower() else f"{self.metric_value:.4f}"
            text += f"  {self.metric} {shown}"
        if self.state:
            text += f"  ({self.state})"
        return text

    def render(self) -> None:
        text = self.line()
        if text == self._last_line:
            return
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
        else:
            self.out.write(text + "\n")
        self.out.flush()
        self._last_line = text

    def message(self, text: str) -> None:
        if self.tty and self._last_line:
            self.out.write("\r\x1b[2K")
        self.out.write(text + "\n")
        self._last_line = ""
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self._last_line:
            self.out.write("\n")
            self.out.flush()
