"""What the RQ queues hold right now and what each live worker can hold, read from the
app's Redis (RQ's records and the workers' capacity advertisements, worker/capacity.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from rq import Queue, Worker
from rq.job import Job

from flautim.redis_connection import client_for
from flautim.worker.capacity import WorkerCapacity, live_workers

QUEUE_NAMES = ("experiments", "experiments-gpu")


@dataclass
class JobRow:
    id: str
    description: str
    status: str
    enqueued_at: str = ""
    error: str = ""


@dataclass
class QueueOverview:
    name: str
    queued: list[JobRow] = field(default_factory=list)
    started: list[JobRow] = field(default_factory=list)
    failed: list[JobRow] = field(default_factory=list)


@dataclass
class WorkerRow:
    name: str
    state: str
    queues: list[str]
    current_job: str
    last_heartbeat: str
    capacity: WorkerCapacity | None = None  # None: it advertises none (an older worker)


def _rows(connection: redis.Redis, ids: list[str], status: str, limit: int) -> list[JobRow]:
    rows = []
    for job in Job.fetch_many(ids[:limit], connection=connection):
        if job is None:
            continue
        error = ""
        if status == "failed":
            result = job.latest_result()
            error = (result.exc_string or "").strip().splitlines()[-1:] if result else ""
            error = error[0] if error else ""
        rows.append(
            JobRow(
                id=job.id,
                description=(job.description or job.func_name or "")[:200],
                status=status,
                enqueued_at=job.enqueued_at.strftime("%d/%m/%Y %H:%M:%S") if job.enqueued_at else "",
                error=error[:300],
            )
        )
    return rows


def overview(redis_url: str, limit: int = 50) -> tuple[list[QueueOverview], list[WorkerRow]]:
    """Queued, started and failed jobs of each experiment queue, and the live workers with
    the capacity they advertise."""
    connection = client_for(redis_url)
    queues = []
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=connection)
        queues.append(
            QueueOverview(
                name=name,
                queued=_rows(connection, queue.get_job_ids(0, limit), "queued", limit),
                started=_rows(connection, queue.started_job_registry.get_job_ids(), "started", limit),
                failed=_rows(connection, queue.failed_job_registry.get_job_ids(), "failed", limit),
            )
        )
    capacity = {c.name: c for c in live_workers(connection)}
    workers = [
        WorkerRow(
            name=w.name,
            state=str(w.get_state()),
            queues=w.queue_names(),
            current_job=w.get_current_job_id() or "",
            last_heartbeat=w.last_heartbeat.strftime("%d/%m/%Y %H:%M:%S") if w.last_heartbeat else "",
            capacity=capacity.get(w.name),
        )
        for w in Worker.all(connection=connection)
    ]
    return queues, workers
