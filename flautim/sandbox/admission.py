"""Whether this host can hold a run before any of its containers starts.

Every container of a run has a memory limit; the run reserves the sum of them (server,
`prepare`, each client) on this host for as long as it runs. A run is admitted only when
its reservation fits beside the others' in the host's capacity: its memory less a reserve
for what else lives here (dockerd, the worker, a database) and the warm pool. Without this,
runs that together need more than the host has would leave the kernel's OOM killer to choose
among dockerd, the worker and PostgreSQL.

A run that can never fit is refused at once, with the numbers; one that fits once others end
waits (saying so in its Logs) for up to SANDBOX_ADMISSION_WAIT_S, then is refused. Never is
a run started half. Reservations are files under `host_state.admission_root`, taken under a
lock, so every worker of the host sees them; one whose process is gone is ignored.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace

from flautim.config import Config
from flautim.fl.virtual_clients import available_cores, client_processes

from .container_spec import role_memory_mb
from .host_state import admission_root, exclusive
from .plan import RunControl, RunPlan, RunSink, SandboxRefused

WAIT_POLL_S = 2.0
# Resident memory of one idle warm-pool container (torch and flwr imported).
POOL_CONTAINER_MB = 240


def run_memory_mb(config: Config, plan: RunPlan) -> int:
    """The sum of the memory limits of every container the run starts: prepare, the server
    and its K client containers (`plan.client_roles`, K from quotas.client_containers)."""
    roles = ["prepare", "server", *plan.client_roles]
    return sum(role_memory_mb(config, plan, role) for role in roles)


def plan_client_containers(config: Config, plan: RunPlan) -> RunPlan:
    """`plan` with K, its client containers, chosen as the runtime chooses its client
    processes (`virtual_clients.client_processes`) from this host's cores and the memory it
    gives runs beside `prepare` and the server, at a client container's limit each; or
    SANDBOX_CLIENT_CONTAINERS. Flower's transport keeps a SuperNode, so a container, per
    client."""
    if plan.transport == "flower":
        return replace(plan, client_containers=plan.clients)
    if config.SANDBOX_CLIENT_CONTAINERS > 0:
        return replace(plan, client_containers=min(plan.clients, config.SANDBOX_CLIENT_CONTAINERS))
    base_mb = role_memory_mb(config, plan, "prepare") + role_memory_mb(config, plan, "server")
    k = client_processes(
        plan.clients, available_cores(), max(0, host_capacity_mb(config) - base_mb) * 2**20,
        role_memory_mb(config, plan, "client-0") * 2**20,
    )
    return replace(plan, client_containers=k)


def host_capacity_mb(config: Config) -> int:
    """Memory this host gives to runs: all of it (or SANDBOX_HOST_MEMORY_MB) less the
    reserve and the warm pool, times SANDBOX_MEMORY_OVERCOMMIT."""
    free = host_memory_mb(config) - config.SANDBOX_HOST_RESERVE_MB - max(0, config.SANDBOX_WARM_POOL) * POOL_CONTAINER_MB
    # Limits are ceilings; a site that knows its runs peak well below them may overcommit.
    return int(free * config.SANDBOX_MEMORY_OVERCOMMIT)


def host_memory_mb(config: Config) -> int:
    """This host's memory as runs see it: SANDBOX_HOST_MEMORY_MB, or all of it."""
    return config.SANDBOX_HOST_MEMORY_MB or _meminfo_mb("MemTotal")


def _meminfo_mb(field: str) -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    raise RuntimeError(f"{field} not in /proc/meminfo")


class Admission:
    """One run's place on this host: `wait()` until it fits, `release()` when it ends."""

    def __init__(self, config: Config, plan: RunPlan) -> None:
        self.config = config
        self.plan = plan
        self.folder = admission_root(config)
        self.ticket = self.folder / f"e{plan.experiment_id}-a{plan.attempt}.json"
        self.need_mb = run_memory_mb(config, plan)

    def wait(self, sink: RunSink, control: RunControl) -> None:
        """Return once admitted; raise SandboxRefused (with the numbers) when it cannot be."""
        capacity = host_capacity_mb(self.config)
        if self.need_mb > capacity:
            raise SandboxRefused(
                f"this run needs {self.need_mb} MB of memory ({self.plan.clients} clients in "
                f"{len(self.plan.client_roles)} containers, the server and prepare, at their memory limits) and this worker host gives runs "
                f"{capacity} MB: use fewer clients or ask the operator for a larger host"
            )
        deadline = time.monotonic() + self.config.SANDBOX_ADMISSION_WAIT_S
        said = False
        while True:
            reserved = self._try_reserve(capacity)
            if reserved is None:
                if said:
                    sink.line("platform", "stdout", "[flautim] memory free: starting")
                return
            if not said:
                sink.line("platform", "stdout",
                          f"[flautim] waiting for memory: this run needs {self.need_mb} MB, other runs "
                          f"hold {reserved} of this host's {capacity} MB")
                said = True
            if control.cancelled():
                raise SandboxRefused("cancelled while waiting for memory")
            if time.monotonic() >= deadline:
                raise SandboxRefused(
                    f"waited {self.config.SANDBOX_ADMISSION_WAIT_S} s for {self.need_mb} MB of memory; "
                    f"other runs still hold {reserved} of this host's {capacity} MB. Run it again later"
                )
            control.beat()
            time.sleep(WAIT_POLL_S)

    def release(self) -> None:
        self.ticket.unlink(missing_ok=True)

    def _try_reserve(self, capacity: int) -> int | None:
        """Take the reservation if it fits (None), else what the others hold (MB)."""
        with self._lock():
            reserved = sum(mb for path, mb in self._live_tickets() if path != self.ticket)
            if reserved + self.need_mb > capacity:
                return reserved
            tmp = self.ticket.with_suffix(".tmp")
            tmp.write_text(json.dumps({"mb": self.need_mb, "pid": os.getpid()}))
            os.replace(tmp, self.ticket)
            return None

    def _live_tickets(self):
        for path in self.folder.glob("*.json"):
            try:
                ticket = json.loads(path.read_text())
                mb, pid = int(ticket["mb"]), int(ticket["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if _alive(pid):
                yield path, mb
            else:
                path.unlink(missing_ok=True)  # its run's process died without releasing it

    def _lock(self):
        return exclusive(self.folder / ".lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's
    return True


__all__ = ["Admission", "host_capacity_mb", "host_memory_mb", "plan_client_containers", "run_memory_mb"]
