"""Allow-list serialisation: each function names exactly the fields a client may see.

Nothing here dumps a row: a new column stays private until someone adds it on purpose.
Storage paths, token hashes and job ids are never exposed.
"""

from __future__ import annotations

from datetime import datetime

from flautim.models import (
    Dataset,
    Experiment,
    ExperimentEvent,
    HyperparameterFile,
    Membership,
    ModelArtifact,
    ModelCode,
    Project,
)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def project(p: Project, membership: Membership | None = None) -> dict:
    body = {
        "id": p.id,
        "name": p.name,
        "description": p.description or "",
        "created_at": iso(p.created_at),
        "archived": p.archived_at is not None,
    }
    if membership is not None:
        body["role"] = membership.role.value
    return body


def _asset(a) -> dict:
    return {
        "id": a.id,
        "project_id": a.project_id,
        "name": a.name,
        "description": a.description or "",
        "content_hash": a.content_hash,
        "size_bytes": int(a.size_bytes or 0),
        "created_at": iso(a.created_at),
    }


def dataset(d: Dataset) -> dict:
    body = _asset(d)
    body.update(
        file_count=int(d.file_count or 0),
        inspection_status=d.inspection_status,
        inspection=d.inspection or {},
    )
    return body


def model_code(m: ModelCode) -> dict:
    body = _asset(m)
    body["filename"] = m.filename
    return body


def hyperparameter_file(h: HyperparameterFile) -> dict:
    body = _asset(h)
    body.update(filename=h.filename, values=h.values or {})
    return body


def experiment(e: Experiment) -> dict:
    return {
        "id": e.id,
        "project_id": e.project_id,
        "name": e.name,
        "description": e.description or "",
        "state": e.state.value,
        "attempt": e.attempt,
        "dataset_id": e.dataset_id,
        "model_code_id": e.model_code_id,
        "hyperparameter_file_id": e.hyperparameter_file_id,
        "cloned_from_id": e.cloned_from_id,
        "transport": e.transport,
        "wants_gpu": bool(e.wants_gpu),
        "cancel_requested": bool(e.cancel_requested),
        "rounds_total": e.rounds_total,
        "rounds_done": e.rounds_done,
        "summary": e.summary or {},
        "failure_kind": e.failure_kind.value if e.failure_kind else None,
        "failure_reason": e.failure_reason,
        "created_at": iso(e.created_at),
        "queued_at": iso(e.queued_at),
        "started_at": iso(e.started_at),
        "finished_at": iso(e.finished_at),
        "duration_s": e.duration_s,
    }


def log_rows(rows: list[tuple]) -> list[dict]:
    """Log lines as the API shows them, from tuples of results.LOG_COLUMNS (id, attempt,
    source, stream, line, created_at): a catch-up page is 1,000 lines. `created_at` stays a
    datetime for `response_cache.json_bytes` (orjson), which writes what `iso` would."""
    return [
        {"id": id_, "attempt": attempt, "source": source, "stream": stream, "line": line,
         "created_at": created_at}
        for id_, attempt, source, stream, line, created_at in rows
    ]


def event(ev: ExperimentEvent) -> dict:
    return {
        "id": ev.id,
        "attempt": ev.attempt,
        "type": ev.type,
        "payload": ev.payload or {},
        "created_at": iso(ev.created_at),
    }


def artifact(a: ModelArtifact) -> dict:
    return {
        "id": a.id,
        "experiment_id": a.experiment_id,
        "attempt": a.attempt,
        "round": a.round,
        "kind": a.kind,
        "format": a.format,
        "size_bytes": int(a.size_bytes or 0),
        "sha256": a.sha256,
        "card": a.card or {},
        "created_at": iso(a.created_at),
    }
