"""The jobs a worker runs: one experiment attempt, or one dataset inspection.

RQ imports these by dotted name with only ids as arguments. Each job reads what it needs,
moves the state, closes its database session and only then starts the long work (the
sandbox), so no connection idles for hours. The final state is written in a fresh session.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import redis

from flautim import quotas, storage
from flautim.config import Config
from flautim.fl.events import EVENT_PREFIX, InvalidEvent, parse_line
from flautim.fl.hyperparameters import HyperparameterError, Hyperparameters, check_value
from flautim.models import Dataset, Experiment, ExperimentState, FailureKind, db
from flautim.object_store import StoredObjectMissing, store_for
from flautim.sandbox import RunControl, RunOutcome, RunPlan, SandboxRefused, sandbox_for
from flautim.sandbox.admission import plan_client_containers
from flautim.sandbox.untrusted_files import remove_tree

from .database import current_config, session_scope
from .heartbeat import Heartbeat
from .ingest import Ingestor
from .queue import cancel_key, experiment_time_limit, publish_state, redis_for
from .run_end_email import send_run_end_email

log = logging.getLogger(__name__)

# The runtime's error kinds (flautim.fl.events.ERROR_KINDS) as the platform's failure kinds.
ERROR_KIND_TO_FAILURE = {
    "user_code": FailureKind.USER_CODE,
    "hyperparameters": FailureKind.USER_CODE,
    "data": FailureKind.USER_CODE,
    "timeout": FailureKind.TIME_LIMIT,
    "out_of_memory": FailureKind.OUT_OF_MEMORY,
    "infrastructure": FailureKind.INFRASTRUCTURE,
}
CODE_FILES = ("dataset.py", "api.py", "hyperparameters.py")


def run_experiment(experiment_id: int, attempt: int | None = None) -> str:
    """Run one queued attempt of an experiment to its end; returns the final state."""
    config = current_config()
    with session_scope(config):
        experiment = db.session.get(Experiment, experiment_id)
        if experiment is None or experiment.state != ExperimentState.QUEUED:
            # Cancelled while queued, or deleted: nothing to do.
            return str(experiment.state) if experiment else "missing"
        if attempt is not None and experiment.attempt != attempt:
            return str(experiment.state)
        attempt = experiment.attempt
        try:
            plan = build_plan(experiment, config)
        except (FileNotFoundError, ValueError) as exc:
            if experiment.transition_if(ExperimentState.QUEUED, ExperimentState.PREPARING):
                experiment.fail(FailureKind.INFRASTRUCTURE, f"the experiment's files are incomplete: {exc}")
            db.session.commit()
            publish_state(experiment, config)
            send_run_end_email(config, experiment_id, attempt)
            return str(experiment.state)
        # The heartbeat exists before the state says "preparing", so a reaper starting
        # elsewhere never mistakes this fresh run for an orphan.
        try:
            rconn = redis_for(config)
        except Exception:  # the run can go on without live updates
            rconn = None
        heartbeat = Heartbeat(rconn, config, experiment_id, attempt).start()
        try:
            # Conditional: a cancel committed since the row was read above wins and the run
            # never starts (a plain write here would overwrite "cancelled" with "preparing").
            started = experiment.transition_if(ExperimentState.QUEUED, ExperimentState.PREPARING)
            if started:
                # What the quotas charge: the containers this run starts (server and clients).
                experiment.summary = {"containers": 1 + len(plan.client_roles)}
            db.session.commit()
        except BaseException:
            heartbeat.stop()
            raise
        if not started:
            heartbeat.stop()
            state = str(experiment.state)
            db.session.remove()
            for folder in (plan.code_dir, plan.code_dir.parent / "inputs"):
                shutil.rmtree(folder, ignore_errors=True)
            return state
        publish_state(experiment, config)
        db.session.remove()

    def on_phase(name: str) -> None:
        if name == "running":
            _set_running(config, experiment_id, attempt)

    sink = RuntimeVerdict(Ingestor(config, experiment_id, attempt, plan.out_dir, redis_client=rconn, on_phase=on_phase))
    control = RunControl(plan.time_limit_s, cancelled=_cancel_check(rconn, config, experiment_id, attempt),
                         heartbeat=heartbeat.beat)
    sink.platform(
        f"[flautim] attempt {attempt}: {plan.clients} clients in {len(plan.client_roles)} client "
        f"processes, time limit {plan.time_limit_s} s"
    )
    sandbox = None
    try:
        sandbox = sandbox_for(config)
        if not sandbox.isolated:
            sink.platform("[flautim] local sandbox: processes on the worker, NOT isolated")
        outcome = sandbox.run(plan, sink, control)
    except SandboxRefused as exc:
        sink.platform(f"[flautim] the run was not started: {exc}")
        outcome = RunOutcome("failed", "infrastructure", str(exc))
    except Exception as exc:  # the platform's fault: keep the worker alive, say so
        log.exception("experiment %s attempt %s crashed in the worker", experiment_id, attempt)
        outcome = RunOutcome("failed", "infrastructure", f"the worker failed: {exc!r}")
    disk_full = disk_full_reason(config.data_path, outcome, sink)
    if disk_full is not None:
        sink.platform(f"[flautim] {disk_full}")
        outcome = RunOutcome("failed", "infrastructure", disk_full, exits=outcome.exits,
                             duration_s=outcome.duration_s, clients_started_s=outcome.clients_started_s)
    sink.platform(f"[flautim] finished: {outcome.status} in {outcome.duration_s:.1f} s")
    sink.close()
    try:
        state = _finish(config, experiment_id, attempt, outcome, sink)
    finally:
        heartbeat.stop()
        # Every container is dead by now (none left to race), and the checkpoints were
        # copied out: what the sandbox wrote goes, links and all, never followed.
        folders = [plan.work_dir, plan.control_dir, plan.out_dir, plan.work_dir.parent / "bundle"]
        if not store_for(config).is_local:
            # The whole attempt folder was this worker's scratch (inputs fetched, checkpoints
            # already in the store).
            folders.append(plan.work_dir.parent)
        for folder in folders:
            remove_tree(folder)
        if sandbox is not None:
            # After the state is final: finish removing the run's containers, and warm the
            # pool for the next run.
            sandbox.replenish()
    # Once the final state is committed, so the email says what the page says.
    send_run_end_email(config, experiment_id, attempt)
    if rconn is not None:
        try:
            rconn.delete(cancel_key(experiment_id, attempt))
        except redis.RedisError:
            pass
    return state


class RuntimeVerdict:
    """The Ingestor, in front of which the runtime's own verdict — its `error` and
    `run_finished` events — is kept as the lines arrive.

    The ingest learns them only when it writes them to the database, and while the database
    is away (a restart, a failover) it may give up on those lines when the run ends; the
    run's outcome must not depend on it (a run that completed would read "the server ended
    without reporting the end of the run").
    """

    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor
        self._run_finished: dict | None = None
        self._last_error: dict | None = None

    def line(self, source: str, stream: str, text: str) -> None:
        if source in ("server", "prepare") and text.startswith(EVENT_PREFIX) and (
            '"run_finished"' in text or '"error"' in text
        ):
            try:
                event = parse_line(text)
            except InvalidEvent:
                event = None
            if event is not None and event["type"] == "error":
                self._last_error = event
            elif event is not None and event["type"] == "run_finished":
                self._run_finished = event
        self._ingestor.line(source, stream, text)

    @property
    def run_finished(self) -> dict | None:
        return self._run_finished or self._ingestor.run_finished

    @property
    def last_error(self) -> dict | None:
        return self._last_error or self._ingestor.last_error

    def __getattr__(self, name: str):
        return getattr(self._ingestor, name)


def build_plan(experiment: Experiment, config) -> RunPlan:
    """Fetch the experiment's files from the object store into the attempt folder (this
    worker's own disk) and describe the run."""
    store = store_for(config)
    pid = experiment.project_id
    attempt_dir = storage.attempt_dir(config.data_path, pid, experiment.id, experiment.attempt)
    code_dir = attempt_dir / "code"
    if experiment.dataset_id is None or experiment.model_code_id is None or experiment.hyperparameter_file_id is None:
        raise ValueError("a dataset, the model's code and a hyperparameter file are required")
    dataset_key = storage.dataset_key(pid, experiment.dataset_id)
    sources = {
        "dataset.py": f"{dataset_key}/dataset.py",
        "api.py": _single_py(store, storage.model_code_key(pid, experiment.model_code_id), "api.py"),
        "hyperparameters.py": _single_py(
            store, storage.hyperparameters_key(pid, experiment.hyperparameter_file_id), "hyperparameters.py"
        ),
    }
    code_dir.mkdir(parents=True, exist_ok=True)
    for name, key in sources.items():
        try:
            (code_dir / name).write_bytes(store.read_bytes(key))
        except StoredObjectMissing:
            raise FileNotFoundError(f"{name} is missing ({key.rsplit('/', 1)[0]})") from None
    (code_dir / "data").mkdir(exist_ok=True)
    values = experiment.hyperparameter_file.values if experiment.hyperparameter_file else {}
    values = values if isinstance(values, dict) else {}
    try:
        clients = check_value("num_clients", values.get("num_clients", Hyperparameters.num_clients))
    except HyperparameterError as exc:
        raise ValueError(exc.what) from None
    device = str(values.get("device", "cpu"))
    plan = RunPlan(
        experiment_id=experiment.id,
        attempt=experiment.attempt,
        code_dir=code_dir,
        # The local store's own folder (no copy), or the objects downloaded to this worker.
        data_dir=store.local_tree(f"{dataset_key}/data", attempt_dir / "inputs" / "data"),
        work_dir=attempt_dir / "work",
        out_dir=attempt_dir / "output",
        clients=clients,
        # The hyperparameters choose; the column keeps what an admin or an older row set.
        transport=str(values.get("transport") or experiment.transport or "fast"),
        time_limit_s=experiment_time_limit(experiment, config),
        wants_gpu=quotas.run_uses_gpu(experiment.wants_gpu, values),
        requires_gpu=device.startswith("cuda"),
    )
    return plan_client_containers(config, plan)


def _single_py(store, prefix: str, preferred: str) -> str:
    """The key of an upload's stored .py (named as uploaded, or by its role)."""
    names = [f.name for f in store.list(prefix) if f.name.endswith(".py") and "/" not in f.name]
    return f"{prefix}/{names[0] if len(names) == 1 and preferred not in names else preferred}"


def _cancel_check(rconn, config: Config, experiment_id: int, attempt: int):
    """Cancel flag from Redis (fast path); the database's cancel_requested every few seconds
    as the fallback when Redis is away or was restarted."""
    state = {"last_db": 0.0, "db_value": False}
    key = cancel_key(experiment_id, attempt)

    def cancelled() -> bool:
        if rconn is not None:
            try:
                if rconn.exists(key):
                    return True
            except redis.RedisError:
                pass
        now = time.monotonic()
        if now - state["last_db"] > 3:
            state["last_db"] = now
            try:
                with session_scope(config):
                    row = db.session.get(Experiment, experiment_id)
                    state["db_value"] = bool(row and row.attempt == attempt and row.cancel_requested)
            except Exception:
                log.warning("experiment %s: cannot read the cancel flag from the database", experiment_id)
        return state["db_value"]

    return cancelled


def _set_running(config: Config, experiment_id: int, attempt: int) -> None:
    with session_scope(config):
        try:
            experiment = db.session.get(Experiment, experiment_id)
            if experiment and experiment.attempt == attempt and experiment.state == ExperimentState.PREPARING:
                experiment.transition(ExperimentState.RUNNING)
                db.session.commit()
                publish_state(experiment, config)
        except Exception:
            log.exception("experiment %s: could not record the running state", experiment_id)
            db.session.rollback()
        finally:
            db.session.remove()


def _finish(config: Config, experiment_id: int, attempt: int, outcome: RunOutcome, sink: Ingestor) -> str:
    """Record the final state; retried while the database is away, for up to
    WORKER_FINAL_STATE_RETRY_S (the heartbeat thread keeps the run from being reaped)."""
    status, kind, reason = decide(outcome, sink)
    for delay in _retry_delays(config.WORKER_FINAL_STATE_RETRY_S):
        time.sleep(delay)
        with session_scope(config):
            try:
                experiment = db.session.get(Experiment, experiment_id)
                if experiment is None or experiment.attempt != attempt or experiment.state.is_terminal:
                    return str(experiment.state) if experiment else "missing"
                if experiment.state == ExperimentState.QUEUED:
                    experiment.transition(ExperimentState.PREPARING)
                if status == ExperimentState.SUCCEEDED and experiment.state == ExperimentState.PREPARING:
                    experiment.transition(ExperimentState.RUNNING)
                if status in (ExperimentState.SUCCEEDED, ExperimentState.CANCELLED):
                    experiment.transition(status)
                    experiment.failure_reason = reason
                else:
                    experiment.fail(kind, reason or "the run failed", state=status)
                # The runtime's count, in case the ingest could not store the rounds' events
                # (the database was away when they came).
                completed = (sink.run_finished or {}).get("rounds_completed")
                if isinstance(completed, int) and not isinstance(completed, bool) and 0 < completed <= 1_000_000:
                    experiment.rounds_done = max(experiment.rounds_done, completed)
                summary = dict(experiment.summary or {})
                summary["duration_s"] = round(outcome.duration_s, 2)
                if outcome.clients_started_s is not None:
                    summary["clients_started_s"] = round(outcome.clients_started_s, 3)
                experiment.summary = summary
                db.session.commit()
                publish_state(experiment, config)
                return str(experiment.state)
            except Exception:
                log.exception("experiment %s: could not record the final state", experiment_id)
                db.session.rollback()
            finally:
                db.session.remove()
    return "unknown"


# Words of an ENOSPC, as Python and torch print it.
DISK_FULL_MARKERS = ("No space left on device", "[Errno 28]", "ENOSPC")
# Below this much free space on the data disk, a run that failed writing is the disk's fault.
DISK_NEARLY_FULL_BYTES = 64 * 2**20


def disk_full_reason(data_dir: Path, outcome: RunOutcome, sink: Ingestor) -> str | None:
    """The infrastructure reason when the run failed because the worker's data disk filled
    up (an error saying ENOSPC, or a failed write with the disk all but full); else None.

    Without it the user sees the server's OSError — or a checkpoint or line silently
    skipped — and blames their code; what they need to know is that it was not theirs.
    """
    if outcome.status in ("cancelled", "timed_out"):
        return None
    error = sink.last_error or {}
    said = " ".join(str(x) for x in (outcome.reason, error.get("what"), error.get("traceback")) if x)
    try:
        stat = os.statvfs(data_dir)
        free, total = stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize
    except OSError:
        free = total = None
    nearly_full = free is not None and free < min(DISK_NEARLY_FULL_BYTES, total * 0.05)
    failed_writing = outcome.status == "failed" or getattr(sink, "skipped", 0) > 0
    if not (any(m in said for m in DISK_FULL_MARKERS) or (nearly_full and failed_writing)):
        return None
    space = f" ({free // 2**20} MB free of {total // 2**20} MB)" if free is not None else ""
    return (
        f"the worker's data disk is full{space}: the run could not write its files. This is not "
        "a fault of your code; the platform's operators have to free space. Run it again later."
    )


def _retry_delays(total_s: float):
    """Waits before each try: 0, 1, 2, 4, 8, then every 15 s until `total_s` have passed."""
    give_up_at = time.monotonic() + total_s
    delay = 0.0
    while True:
        yield delay
        if time.monotonic() >= give_up_at:
            return
        delay = min(max(1.0, delay * 2), 15.0)


def decide(outcome: RunOutcome, sink: Ingestor) -> tuple[ExperimentState, FailureKind | None, str | None]:
    """The final state from the backend's outcome and what the runtime itself reported."""
    if outcome.status == "cancelled":
        return ExperimentState.CANCELLED, None, outcome.reason
    if outcome.status == "timed_out":
        return ExperimentState.TIMED_OUT, FailureKind.TIME_LIMIT, outcome.reason
    error = sink.last_error
    finished = sink.run_finished
    if outcome.status == "succeeded":
        if finished is None:
            return ExperimentState.FAILED, _error_kind(error), _error_reason(error) or (
                "the server ended without reporting the end of the run; see its logs"
            )
        if finished.get("status") != "completed":
            return ExperimentState.FAILED, _error_kind(error), _error_reason(error) or (
                f"the run finished with status {finished.get('status')!r}"
            )
        return ExperimentState.SUCCEEDED, None, outcome.reason
    kind = FailureKind(outcome.failure_kind) if outcome.failure_kind else FailureKind.INFRASTRUCTURE
    reason = outcome.reason
    if kind == FailureKind.USER_CODE and error is not None:
        # The runtime's own error says what and where (file, line) — better than an exit code.
        kind = _error_kind(error)
        reason = _error_reason(error)
    if kind == FailureKind.TIME_LIMIT:
        return ExperimentState.TIMED_OUT, kind, reason
    return ExperimentState.FAILED, kind, reason


def _error_kind(error: dict | None) -> FailureKind:
    if not error:
        return FailureKind.USER_CODE
    return ERROR_KIND_TO_FAILURE.get(str(error.get("kind")), FailureKind.USER_CODE)


def _error_reason(error: dict | None) -> str | None:
    if not error:
        return None
    parts = [str(error.get("what") or "")]
    if error.get("where"):
        parts.append(f"({error['where']})")
    if error.get("hint"):
        parts.append(f"— {error['hint']}")
    return " ".join(p for p in parts if p)


# --- dataset inspection -------------------------------------------------------------------

class _Collect:
    """A RunSink that keeps the inspect process's output in memory."""

    def __init__(self) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def line(self, source: str, stream: str, text: str) -> None:
        (self.stdout if stream == "stdout" else self.stderr).append(text)

    def phase(self, name: str) -> None:
        pass


def inspect_dataset(dataset_id: int) -> str:
    """Run `python -m flautim.fl inspect` on a stored dataset in the sandbox; store the result."""
    config = current_config()
    with session_scope(config):
        dataset = db.session.get(Dataset, dataset_id)
        if dataset is None:
            return "missing"
        key = storage.dataset_key(dataset.project_id, dataset.id)
        scratch = config.data_path / "tmp" / f"inspect-{dataset.id}-{int(time.time() * 1000)}"
        db.session.remove()
    store = store_for(config)
    code_dir = scratch / "code"
    code_dir.mkdir(parents=True)
    (code_dir / "data").mkdir()
    try:
        (code_dir / "dataset.py").write_bytes(store.read_bytes(f"{key}/dataset.py"))
    except StoredObjectMissing:
        pass  # the inspection reports the missing class
    data_dir = store.local_tree(f"{key}/data", scratch / "inputs")
    plan = RunPlan(experiment_id=0, attempt=dataset_id, code_dir=code_dir, data_dir=data_dir,
                   work_dir=scratch / "work", out_dir=scratch / "out", clients=0, time_limit_s=300)
    collect = _Collect()
    try:
        outcome = sandbox_for(config).run_single(plan, "inspect", collect, RunControl(300))
    except SandboxRefused as exc:
        outcome = RunOutcome("failed", "infrastructure", str(exc))
    finally:
        remove_tree(scratch)  # holds the sandbox's work and out folders
    result = _last_json_object(collect.stdout)
    if result is None:
        status = "error"
        result = {"error": {"what": outcome.reason or "the inspection printed no result",
                            "where": "dataset.py", "hint": "", "kind": outcome.failure_kind or "user_code",
                            "stderr": "\n".join(collect.stderr[-40:])}}
    else:
        status = "error" if "error" in result or outcome.status != "succeeded" else "ok"
    with session_scope(config):
        dataset = db.session.get(Dataset, dataset_id)
        if dataset is not None:
            dataset.inspection = result
            dataset.inspection_status = status
            db.session.commit()
        db.session.remove()
    return status


def _last_json_object(lines: list[str]) -> dict | None:
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None
