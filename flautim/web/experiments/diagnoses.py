"""A run's diagnoses (flautim/diagnosis.py) as Saídas' banners and the API list them: the
stored `diagnosis` events, rendered in the request's language."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from flautim.diagnosis import HELP, KINDS, describe
from flautim.live_messages import int_or_none
from flautim.models import Experiment, ExperimentEvent, db
from flautim.web.help import help_url

# More than a run can have (4 kinds, at most 20 ignored keys): the bound a hostile payload cannot move.
MAX_SHOWN = 50


def experiment_diagnoses(experiment: Experiment, attempt: int | None = None) -> list[dict[str, Any]]:
    """The attempt's diagnoses, oldest first: {id, attempt, kind, code, round, params, help,
    help_url, title, message, hint, created_at}."""
    rows = db.session.execute(
        select(ExperimentEvent.id, ExperimentEvent.attempt, ExperimentEvent.payload, ExperimentEvent.created_at)
        .where(
            ExperimentEvent.experiment_id == experiment.id,
            ExperimentEvent.attempt == (experiment.attempt if attempt is None else attempt),
            ExperimentEvent.type == "diagnosis",
        )
        .order_by(ExperimentEvent.id)
        .limit(MAX_SHOWN)
    )
    return [d for d in (shown(*row) for row in rows) if d is not None]


def shown(id: int, attempt: int, payload: Any, created_at: Any) -> dict[str, Any] | None:
    """One stored diagnosis as it is shown; None for a payload that is not one."""
    if not isinstance(payload, dict) or payload.get("kind") not in KINDS:
        return None
    kind = payload["kind"]
    code = str(payload.get("code") or kind)[:64]
    round_ = int_or_none(payload.get("round"))
    params = payload.get("params") if isinstance(payload.get("params"), dict) else {}
    return {
        "id": id,
        "attempt": attempt,
        "kind": kind,
        "code": code,
        "round": round_,
        "params": params,
        "help": HELP[kind],
        "help_url": help_url(HELP[kind], external=True),
        **describe({**payload, "code": code, "params": params}),
        "created_at": created_at,
    }
