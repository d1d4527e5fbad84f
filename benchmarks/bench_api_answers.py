"""What the API's pydantic declarations cost per request, beside the hand-written code they
replaced: reading a query string, and building an answer from a row.

    .venv/bin/python benchmarks/bench_api_answers.py [--number 20000]

Prints microseconds per call, each pair measured alternately (a shared machine's
neighbours move both sides alike). Not a test. The rows are plain objects with an
Experiment's attributes, so no database is needed: this is the serialisation alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flautim.models import ExperimentState  # noqa: E402
from flautim.web.api import schemas as s  # noqa: E402

NOW = datetime.now(UTC)
ROW = SimpleNamespace(
    id=1, project_id=2, name="mnist", description="", state=ExperimentState.RUNNING, attempt=1, dataset_id=1,
    model_code_id=2, hyperparameter_file_id=3, cloned_from_id=None, transport="fast", wants_gpu=False,
    cancel_requested=False, rounds_total=10, rounds_done=3, summary={"best_accuracy": 0.91}, failure_kind=None,
    failure_reason=None, created_at=NOW, queued_at=NOW, started_at=NOW, finished_at=None, duration_s=12.5,
)
QUERY = {"format": "series", "name": "loss", "after_round": "10", "limit": "20"}


def _iso(value):
    return value.isoformat() if value is not None else None


def hand_written_answer() -> str:
    """The former serializers.experiment plus Flask's jsonify (sorted keys)."""
    e = ROW
    body = {
        "id": e.id, "project_id": e.project_id, "name": e.name, "description": e.description or "",
        "state": e.state.value, "attempt": e.attempt, "dataset_id": e.dataset_id,
        "model_code_id": e.model_code_id, "hyperparameter_file_id": e.hyperparameter_file_id,
        "cloned_from_id": e.cloned_from_id, "transport": e.transport, "wants_gpu": bool(e.wants_gpu),
        "cancel_requested": bool(e.cancel_requested), "rounds_total": e.rounds_total,
        "rounds_done": e.rounds_done, "summary": e.summary or {},
        "failure_kind": e.failure_kind.value if e.failure_kind else None, "failure_reason": e.failure_reason,
        "created_at": _iso(e.created_at), "queued_at": _iso(e.queued_at), "started_at": _iso(e.started_at),
        "finished_at": _iso(e.finished_at), "duration_s": e.duration_s,
    }
    return json.dumps(body, sort_keys=True)


def declared_answer() -> str:
    return s.Experiment.model_validate(ROW).model_dump_json(exclude_unset=True)


def hand_written_query() -> tuple:
    """The former params.int_arg / str_arg checks of the metrics route, in short."""
    fmt = QUERY.get("format") or "rows"
    if fmt not in ("rows", "series"):
        raise ValueError("format")
    out = [fmt]
    for key, size in (("source", 32), ("phase", 16), ("name", 64)):
        value = QUERY.get(key)
        if value is not None and len(value) > size:
            raise ValueError(key)
        out.append(value)
    for key, low, high in (("round_min", 0, 2**31 - 1), ("round_max", 0, 2**31 - 1),
                           ("after_round", -1, 2**31 - 1), ("limit", 1, 10_000)):
        raw = QUERY.get(key)
        value = int(raw) if raw else None
        if value is not None and not low <= value <= high:
            raise ValueError(key)
        out.append(value)
    return tuple(out)


def declared_query() -> s.MetricsQuery:
    return s.MetricsQuery.model_validate(QUERY)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternations; the best of each side is shown")
    args = parser.parse_args()
    pairs = (("experiment answer", hand_written_answer, declared_answer),
             ("metrics query string", hand_written_query, declared_query))
    print(f"{'per call, best of ' + str(args.rounds):<28}{'hand-written':>14}{'pydantic':>12}")
    for label, before, after in pairs:
        best = {before: float("inf"), after: float("inf")}
        for _ in range(args.rounds):
            for fn in (before, after):
                best[fn] = min(best[fn], timeit.timeit(fn, number=args.number) / args.number * 1e6)
        print(f"{label:<28}{best[before]:>11.1f} us{best[after]:>9.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
