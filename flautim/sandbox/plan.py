"""What a backend is asked to run, how it reports, and what it returns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

from flautim.fl.virtual_clients import split_clients


class SandboxRefused(RuntimeError):
    """The backend cannot run this plan here (e.g. a GPU is required and there is none)."""


@dataclass(frozen=True)
class RunPlan:
    """One attempt of one experiment.

    `code_dir` holds dataset.py, api.py and hyperparameters.py; `data_dir` the dataset's
    data files (read-only for everything); `work_dir` holds the partitions (one folder per
    client plus `server/`, each writable by the sandbox; `work_dir` itself is the worker's);
    `out_dir` is where the server writes checkpoints for the worker to copy;
    `control_dir` is the worker's alone: its signals to the containers (mounted read-only).
    `client_containers` is K, the client containers (or processes) hosting the `clients`
    clients (0: one per client); with fewer than `clients` each hosts a contiguous group.
    """

    experiment_id: int
    attempt: int
    code_dir: Path
    data_dir: Path
    work_dir: Path
    out_dir: Path
    clients: int
    transport: str = "fast"
    time_limit_s: int = 3600
    wants_gpu: bool = False
    # True when the hyperparameters insist on a GPU (device="cuda"): no CPU fallback.
    requires_gpu: bool = False
    client_containers: int = 0

    def client_dir(self, index: int) -> Path:
        group = self._group_of.get(index)
        return (self.work_dir / group if group else self.work_dir) / f"client-{index}"

    def group_dir(self, role: str) -> Path:
        """The folder of a group role (`clients-<first>-<last>`): its clients' partition
        folders, mounted whole (read-only) as its container's /data."""
        if not role.startswith("clients-") or role not in self.client_roles:
            raise ValueError(f"{role!r} is not a group of this run")
        return self.work_dir / role

    @cached_property
    def client_roles(self) -> list[str]:
        """One role per client container: `client-<i>` for a client of its own, else
        `clients-<first>-<last>` for a group (its log source too)."""
        groups = split_clients(list(range(self.clients)), self.client_containers or self.clients)
        return [f"client-{g[0]}" if len(g) == 1 else f"clients-{g[0]}-{g[-1]}" for g in groups if g]

    @cached_property
    def _group_of(self) -> dict[int, str]:
        return {i: role for role in self.client_roles if role.startswith("clients-") for i in role_clients(role)}

    @property
    def group_dirs(self) -> list[Path]:
        return [self.group_dir(role) for role in self.client_roles if role.startswith("clients-")]

    @property
    def server_data_dir(self) -> Path:
        return self.work_dir / "server"

    @property
    def partition_dirs(self) -> list[Path]:
        return [self.server_data_dir, *(self.client_dir(i) for i in range(self.clients))]

    @property
    def control_dir(self) -> Path:
        return self.work_dir.parent / "control"


# A group's container (or local process) is one client process: its clients train in turn,
# as a container's CPU quota and memory limit are sized for one.
GROUP_ENVIRONMENT = {"FLAUTIM_CLIENT_PROCESSES": "1"}


def role_clients(role: str) -> range:
    """The clients a client role hosts: `client-7` -> 7..7, `clients-0-99` -> 0..99."""
    if role.startswith("client-"):
        first = last = int(role.removeprefix("client-"))
    elif role.startswith("clients-"):
        first, last = (int(x) for x in role.removeprefix("clients-").split("-"))
    else:
        raise ValueError(f"{role!r} is not a client role")
    return range(first, last + 1)


class RunSink(Protocol):
    """Receives what a run prints, from several threads at once."""

    def line(self, source: str, stream: str, text: str) -> None: ...

    def phase(self, name: str) -> None:
        """"running" once the partitions are ready and the federation starts."""

    # Optional: the runtime's `run_finished` event once a line carried it (else None or
    # absent); the backends watch the processes' exits more closely after it.
    run_finished: dict | None


class RunControl:
    """Cancel flag and deadline, checked by the backend's supervision loop."""

    def __init__(self, time_limit_s: float, cancelled=lambda: False, heartbeat=lambda: None):
        self.deadline = time.monotonic() + time_limit_s
        self._cancelled = cancelled
        self._heartbeat = heartbeat

    def cancelled(self) -> bool:
        return bool(self._cancelled())

    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    def beat(self) -> None:
        self._heartbeat()


@dataclass
class ProcessExit:
    """How one container or process ended."""

    source: str
    exit_code: int | None
    oom_killed: bool = False
    killed_by_us: bool = False


@dataclass
class RunOutcome:
    """The backend's verdict. `status` is "succeeded", "failed", "cancelled" or "timed_out";
    `failure_kind` one of FailureKind's values when it failed."""

    status: str
    failure_kind: str | None = None
    reason: str | None = None
    exits: list[ProcessExit] = field(default_factory=list)
    duration_s: float = 0.0
    # Seconds from the start of the federation to every client process running.
    clients_started_s: float | None = None
