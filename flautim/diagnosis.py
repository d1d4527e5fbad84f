"""Diagnoses of a run, in the user's words: what looks wrong in its curves, from which round.

The worker's ingest feeds every event of an attempt to a `RunWatch` as it stores it; the
watch answers with the problems that just began (`Diagnosis`), each at most once per
attempt, which the ingest stores as `diagnosis` events and publishes live. The runtime
cannot forge one: `diagnosis` is not a type of the runtime's stream (flautim.fl.events), so
such a line from the sandbox is refused as an invalid event.

Why here and not in the runtime: the worker is the trusted side (user code shares the
server's process and could print or suppress anything), it sees every event of the run
whatever the transport, and thresholds can change without rebuilding the sandbox image.
The runtime reports what only it can see: the global weights' norm (`aggregated` of phase
train, `weights_norm`) and the hyperparameter keys nothing read (a `warning` with
`code` "hyperparameters.ignored_key", flautim/fl/hyperparameter_reads.py).

Every threshold is below, with its reason. Texts are Brazilian Portuguese msgids rendered
through `flautim.translation` (the web installs the request's language); an event carries
only `kind`, `code`, `round`, `params` and `help` (an FAQ slug), so every reader renders it
in its own language.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from flautim import help_topics, run_messages, translation
from flautim.headline import accuracy_name
from flautim.live_messages import int_or_none, number_or_none

# --- thresholds ---------------------------------------------------------------------------

# Divergence: the training loss at 10x its best so far, the untrained model's evaluation
# (round 0) included, so a run that explodes within round 1 is caught. A healthy run's loss
# wanders by a few tens of percent from round to round even near zero (the MNIST example's
# worst rise is 1.12x); a learning rate too high multiplies it by 10-1,000 within a round
# or two (Adam at 1.0 on MNIST: 2.3 -> 5,917 in round 1). It must also stand above the
# first loss reported (the untrained model's): near zero one unlucky batch multiplies a loss
# by 15 (an overfitting MNIST run: 0.0001 -> 0.0015) with nothing diverging.
DIVERGENCE_LOSS_FACTOR = 10.0
# ... or the global weights' L2 norm at 10x the first one reported (the initial weights',
# with central evaluation): healthy training grows it slowly (the MNIST example: 1.7x over
# 10 rounds from its first round), an exploding update multiplies it.
DIVERGENCE_NORM_FACTOR = 10.0

# Stuck at chance: from round 3 on (a model that learns at all leaves chance in round 1 or
# 2), the accuracy of the last 3 rounds within CHANCE_MARGIN(classes) of 1/classes.
CHANCE_FIRST_ROUND = 3
CHANCE_ROUNDS = 3
# Half of chance (a constant predictor on slightly unbalanced data scores 1/classes give or
# take that), capped at 5 points so that 2 or 3 classes are not called learning at 0.56.
CHANCE_RELATIVE_MARGIN = 0.5
CHANCE_MAX_MARGIN = 0.05

# Overfitting: over 3 consecutive rounds the validation loss rose every round while the
# training loss ended lower: one or two rises are noise of the client sampling and of
# small validation sets; three in a row, with training still improving, is the pattern.
OVERFIT_ROUNDS = 3
# ... and the validation loss is at least 5% above its best (tiny rises are noise).
OVERFIT_MIN_RISE = 0.05

# Heterogeneity of results: the spread of the clients' accuracy of the same global model
# beyond what sampling noise explains (each client's binomial variance p(1-p)/n taken out)
# reaches 15 points, in 2 consecutive rounds. The MNIST example's IID clients: 0-3 points
# once it learned, 9 in round 2 while it learns fast; one-class clients: 30 and more.
SPREAD_ACCURACY_STD = 0.15
SPREAD_ROUNDS = 2
# Clients with fewer validation examples are too noisy to compare; fewer clients, no spread.
SPREAD_MIN_EXAMPLES = 20
SPREAD_MIN_CLIENTS = 3
# Without an accuracy (regression), the clients' losses: standard deviation >= their mean
# (coefficient of variation 1) in 2 consecutive rounds.
SPREAD_LOSS_CV = 1.0
# Heterogeneity of data: a client is dominated by one class when it holds 90% or more of
# its examples; a quarter of the clients so dominated (at least one) is a highly skewed
# partition (Dirichlet alpha <= 0.1, or one class per client), known before round 1.
DOMINANT_CLASS_SHARE = 0.9
DOMINATED_CLIENTS_SHARE = 0.25

# Ignored hyperparameters: at most this many named per attempt (the runtime names each
# once; a hostile run could print thousands of warnings).
MAX_IGNORED_KEYS = 20

# --- what a diagnosis says ----------------------------------------------------------------

DIVERGENCE = "divergence"
STUCK_AT_CHANCE = "stuck_at_chance"
OVERFITTING = "overfitting"
HETEROGENEITY = "heterogeneity"
IGNORED_HYPERPARAMETER = "ignored_hyperparameter"
KINDS = (DIVERGENCE, STUCK_AT_CHANCE, OVERFITTING, HETEROGENEITY, IGNORED_HYPERPARAMETER)

# The FAQ entry that explains each problem.
HELP = {
    DIVERGENCE: help_topics.HYPERPARAMETERS,
    STUCK_AT_CHANCE: help_topics.HYPERPARAMETERS,
    OVERFITTING: help_topics.HYPERPARAMETERS,
    HETEROGENEITY: help_topics.DATA_HETEROGENEITY,
    IGNORED_HYPERPARAMETER: help_topics.HYPERPARAMETERS,
}
# The warning code by which the runtime names a key nothing read (flautim/fl/error_codes.py).
IGNORED_WARNING_CODE = "hyperparameters.ignored_key"


@dataclass(frozen=True)
class Diagnosis:
    """A problem that began in `round` (None: before the rounds, or not tied to one)."""

    kind: str
    code: str
    round: int | None
    params: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The stored `diagnosis` event's fields (besides v, type and ts): `code` and
        `params` (the round among them) fill the code's template in flautim/run_messages.py."""
        params = {name: _readable(value) for name, value in self.params.items() if name != "where"}
        if self.round is not None:
            params["round"] = self.round
        fields = {"kind": self.kind, "code": self.code, "round": self.round, "params": params, "help": HELP[self.kind]}
        if "where" in self.params:
            fields["where"] = self.params["where"]
        return fields


def _l(message: str) -> str:
    """Marks a msgid for the catalog (scripts/i18n extracts it); translated where shown."""
    return message


TITLES = {
    DIVERGENCE: _l("O treino está divergindo"),
    STUCK_AT_CHANCE: _l("A acurácia está no nível do acaso"),
    OVERFITTING: _l("Sobreajuste (overfitting)"),
    HETEROGENEITY: _l("Dados muito heterogêneos entre os clientes"),
    IGNORED_HYPERPARAMETER: _l("Hiperparâmetro ignorado, talvez com erro de digitação"),
}


def describe(payload: dict[str, Any]) -> dict[str, str]:
    """{"title", "message", "hint"} of a stored diagnosis in the current language: the
    message and hint are its code's template (flautim/run_messages.py, where every code of
    a run's messages is written), filled with its params."""
    shown = run_messages.render(payload)
    title = TITLES.get(payload.get("kind"), _l("Diagnóstico"))
    return {"title": translation.gettext(title), "message": shown.text(), "hint": shown.hint}


def _readable(value: Any) -> Any:
    """A number as a message shows it: 3 significant digits (5916.95 -> 5920, 0.87081 -> 0.871)."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.3g}")
    return value


# --- watching a run -----------------------------------------------------------------------


@dataclass
class _ClientResult:
    loss: float | None
    accuracy: float | None
    examples: int


class RunWatch:
    """Follows one attempt's events, in order, and returns the problems that begin.

    Series are kept by round, so observing an event again (a batch written again after a
    failed write) changes nothing; `emitted` is what a failed write must restore
    (`emitted = saved`), so a diagnosis whose row was lost is found again.
    """

    def __init__(self) -> None:
        self.emitted: set[str] = set()
        self.classes: int | None = None
        self.train_loss: dict[int, float] = {}
        self.initial_loss: float | None = None
        self.norms: dict[int, float] = {}
        self.val_loss: dict[str, dict[int, float]] = {"central": {}, "federated": {}}
        self.accuracy: dict[str, dict[int, float]] = {"central": {}, "federated": {}}
        self.accuracy_name: dict[str, str] = {}
        self.clients: dict[int, dict[str, _ClientResult]] = {}
        self.spread_rounds: dict[int, str] = {}

    def observe(self, event: dict[str, Any]) -> list[Diagnosis]:
        kind = event.get("type")
        rnd = int_or_none(event.get("round"))
        found: list[Diagnosis | None] = []
        if kind == "partition_summary":
            found.append(self._partition(event))
        elif kind == "warning" and event.get("code") == IGNORED_WARNING_CODE:
            found.append(self._ignored(event))
        elif rnd is None or rnd < 0:
            return []
        elif kind == "central_evaluate" and rnd == 0:
            # The untrained model: the references of the divergence checks.
            loss, norm = number_or_none(event.get("loss")), number_or_none(event.get("weights_norm"))
            if loss is not None:
                self.initial_loss = loss
            if norm is not None:
                self.norms[0] = norm
        elif kind == "aggregated" and event.get("phase") == "train":
            loss = number_or_none(event.get("loss"))
            if loss is not None:
                self.train_loss[rnd] = loss
                found.append(self._loss_divergence(rnd))
            norm = number_or_none(event.get("weights_norm"))
            if norm is not None:
                self.norms[rnd] = norm
                found.append(self._norm_divergence(rnd))
            found.append(self._overfitting())
        elif kind == "client_evaluate":
            self._client(rnd, event)
        elif kind in ("aggregated", "central_evaluate") and rnd > 0:
            source = "central" if kind == "central_evaluate" else "federated"
            loss = number_or_none(event.get("loss"))
            if loss is not None:
                self.val_loss[source][rnd] = loss
            name, accuracy = _accuracy(event.get("metrics"))
            if accuracy is not None:
                self.accuracy[source][rnd] = accuracy
                self.accuracy_name[source] = name
            found.append(self._chance())
            found.append(self._overfitting())
            if source == "federated":
                found.append(self._spread(rnd))
        return [d for d in found if d is not None]

    def _once(self, key: str, diagnosis: Diagnosis) -> Diagnosis | None:
        if key in self.emitted:
            return None
        self.emitted.add(key)
        return diagnosis

    # --- divergence ---

    def _loss_divergence(self, rnd: int) -> Diagnosis | None:
        earlier = {r: v for r, v in self.train_loss.items() if r < rnd and v > 0}
        if self.initial_loss is not None and self.initial_loss > 0:
            earlier.setdefault(0, self.initial_loss)
        if DIVERGENCE in self.emitted or not earlier:
            return None
        best_round = min(earlier, key=earlier.__getitem__)
        best, loss = earlier[best_round], self.train_loss[rnd]
        if loss < DIVERGENCE_LOSS_FACTOR * best or loss <= earlier[min(earlier)]:
            return None
        return self._once(DIVERGENCE, Diagnosis(DIVERGENCE, "diagnosis.divergence.loss", rnd, {
            "loss": loss, "best": best, "best_round": best_round, "factor": round(loss / best, 1)}))

    def _norm_divergence(self, rnd: int) -> Diagnosis | None:
        earlier = [r for r in sorted(self.norms) if r < rnd and self.norms[r] > 0]
        if DIVERGENCE in self.emitted or not earlier:
            return None
        first_round = earlier[0]
        first, norm = self.norms[first_round], self.norms[rnd]
        if norm < DIVERGENCE_NORM_FACTOR * first:
            return None
        return self._once(DIVERGENCE, Diagnosis(DIVERGENCE, "diagnosis.divergence.weights_norm", rnd, {
            "norm": norm, "first": first, "first_round": first_round, "factor": round(norm / first, 1)}))

    # --- stuck at chance ---

    def _evaluation(self, series: dict[str, dict[int, float]]) -> tuple[str, dict[int, float]]:
        """The central evaluation's series once it reports, else the clients' aggregate."""
        return ("central", series["central"]) if series["central"] else ("federated", series["federated"])

    def _chance(self) -> Diagnosis | None:
        source, accuracy = self._evaluation(self.accuracy)
        if STUCK_AT_CHANCE in self.emitted or not self.classes or self.classes < 2 or not accuracy:
            return None
        last = max(accuracy)
        if last < CHANCE_FIRST_ROUND:
            return None
        chance = 1.0 / self.classes
        margin = min(CHANCE_MAX_MARGIN, CHANCE_RELATIVE_MARGIN * chance)
        streak = []
        for rnd in range(last, 0, -1):
            if rnd not in accuracy or abs(accuracy[rnd] - chance) > margin:
                break
            streak.append(rnd)
        if len(streak) < CHANCE_ROUNDS:
            return None
        return self._once(STUCK_AT_CHANCE, Diagnosis(STUCK_AT_CHANCE, "diagnosis.stuck_at_chance", streak[-1], {
            "accuracy": accuracy[last], "chance": chance, "classes": self.classes,
            "metric": self.accuracy_name.get(source, "accuracy")}))

    # --- overfitting ---

    def _overfitting(self) -> Diagnosis | None:
        _source, val = self._evaluation(self.val_loss)
        if OVERFITTING in self.emitted or not val:
            return None
        last = max(val)
        rounds = list(range(last - OVERFIT_ROUNDS, last + 1))
        if any(r not in val or r not in self.train_loss for r in rounds):
            return None
        rising = all(val[a] < val[b] for a, b in zip(rounds, rounds[1:], strict=False))
        best = min(v for r, v in val.items() if r <= rounds[0])
        falling = self.train_loss[rounds[-1]] < self.train_loss[rounds[0]]
        if not (rising and falling and val[last] >= (1 + OVERFIT_MIN_RISE) * best):
            return None
        return self._once(OVERFITTING, Diagnosis(OVERFITTING, "diagnosis.overfitting", rounds[1], {
            "best": best, "loss": val[last], "train_from": self.train_loss[rounds[0]],
            "train_to": self.train_loss[rounds[-1]]}))

    # --- heterogeneity ---

    def _partition(self, event: dict[str, Any]) -> Diagnosis | None:
        clients = event.get("clients") if isinstance(event.get("clients"), list) else []
        labels: set[str] = set()
        dominated = single = counted = 0
        for client in clients:
            counts = client.get("label_counts") if isinstance(client, dict) else None
            if not isinstance(counts, dict):
                continue
            values = [v for v in (number_or_none(c) for c in counts.values()) if v is not None and v > 0]
            labels.update(str(k) for k in counts)
            if not values:
                continue
            counted += 1
            single += len(values) == 1
            dominated += max(values) >= DOMINANT_CLASS_SHARE * sum(values)
        classes = int_or_none(event.get("num_classes"))
        self.classes = classes if classes is not None and 0 < classes <= 1_000_000 else (len(labels) or None)
        if not counted or not self.classes or self.classes < 2:
            return None
        if dominated < max(1, math.ceil(DOMINATED_CLIENTS_SHARE * counted)):
            return None
        return self._once(HETEROGENEITY, Diagnosis(HETEROGENEITY, "diagnosis.heterogeneity.partition", None, {
            "dominated": dominated, "clients": counted, "single_class": single,
            "share_percent": round(DOMINANT_CLASS_SHARE * 100)}))

    def _client(self, rnd: int, event: dict[str, Any]) -> None:
        examples = int_or_none(event.get("examples"))
        if examples is None or examples < SPREAD_MIN_EXAMPLES:
            return
        _name, accuracy = _accuracy(event.get("metrics"))
        if accuracy is not None and not 0 <= accuracy <= 1:
            accuracy = None
        # Only the newest rounds matter: older ones go (a 1,000-client run reports 1,000 a round).
        for old in [r for r in self.clients if r < rnd - SPREAD_ROUNDS]:
            del self.clients[old]
        self.clients.setdefault(rnd, {})[str(event.get("client"))[:64]] = _ClientResult(
            number_or_none(event.get("loss")), accuracy, examples)

    def _spread(self, rnd: int) -> Diagnosis | None:
        results = list(self.clients.get(rnd, {}).values())
        if HETEROGENEITY in self.emitted or len(results) < SPREAD_MIN_CLIENTS:
            return None
        accuracies = [(r.accuracy, r.examples) for r in results if r.accuracy is not None]
        params: dict[str, Any] | None = None
        if len(accuracies) >= SPREAD_MIN_CLIENTS:
            values = [a for a, _n in accuracies]
            mean = sum(values) / len(values)
            observed = sum((a - mean) ** 2 for a in values) / (len(values) - 1)
            noise = sum(a * (1 - a) / n for a, n in accuracies) / len(accuracies)
            spread = math.sqrt(max(0.0, observed - noise))
            if spread >= SPREAD_ACCURACY_STD:
                params = {"low": min(values), "high": max(values), "spread": spread, "clients": len(values),
                          "basis": "accuracy"}
        else:
            losses = [r.loss for r in results if r.loss is not None and r.loss >= 0]
            if len(losses) >= SPREAD_MIN_CLIENTS:
                mean = sum(losses) / len(losses)
                std = math.sqrt(sum((v - mean) ** 2 for v in losses) / (len(losses) - 1))
                if mean > 0 and std >= SPREAD_LOSS_CV * mean:
                    params = {"low": min(losses), "high": max(losses), "clients": len(losses), "basis": "loss"}
        if params is None:
            self.spread_rounds.pop(rnd, None)
            return None
        self.spread_rounds[rnd] = params["basis"]
        streak = [r for r in range(rnd - SPREAD_ROUNDS + 1, rnd + 1) if r in self.spread_rounds]
        if len(streak) < SPREAD_ROUNDS:
            return None
        code = f"diagnosis.heterogeneity.{params['basis']}_spread"
        return self._once(HETEROGENEITY, Diagnosis(HETEROGENEITY, code, streak[0], params))

    # --- ignored hyperparameters ---

    def _ignored(self, event: dict[str, Any]) -> Diagnosis | None:
        params = event.get("params") if isinstance(event.get("params"), dict) else {}
        key = params.get("key")
        if not isinstance(key, str) or not key or len(key) > 100:
            return None
        if sum(1 for k in self.emitted if k.startswith(IGNORED_HYPERPARAMETER + ":")) >= MAX_IGNORED_KEYS:
            return None
        suggestion = params.get("suggestion")
        where = params.get("where")
        return self._once(f"{IGNORED_HYPERPARAMETER}:{key}", Diagnosis(
            IGNORED_HYPERPARAMETER, IGNORED_WARNING_CODE, None, {
                "key": key,
                **({"suggestion": suggestion[:200]} if isinstance(suggestion, str) and suggestion else {}),
                "where": where[:200] if isinstance(where, str) and where else "hyperparameters.py"}))


def _accuracy(metrics: Any) -> tuple[str, float | None]:
    name = accuracy_name(metrics)
    return (name, number_or_none(metrics[name])) if name else ("", None)
