"""DockerSandbox: one internal network and hardened containers per experiment attempt."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, NotFound

from flautim.config import Config

from .admission import Admission
from .capture import pump_lines
from .container_spec import (
    PREPARED_MARKER,
    container_kwargs,
    container_name,
    cpu_limits,
    gpu_assignment,
    host_gpus,
    network_name,
    role_command,
    role_cpus,
    role_environment,
    role_memory_mb,
    role_mounts,
    run_labels,
)
from .host_firewall import bridge_name, ensure_host_firewall
from .plan import ProcessExit, RunControl, RunOutcome, RunPlan, RunSink, SandboxRefused
from .supervision import Supervision, prepare_dirs
from .untrusted_files import UnsafePath, check_mount_source, create_signal
from .warm_pool import Pooled, WarmPool, remove_container

log = logging.getLogger(__name__)

POLL_S = 0.5
# Where everything waits on an exit (`prepare`'s; the clients' once the server is done),
# notice it sooner.
FAST_POLL_S = 0.1
START_PARALLELISM = 4


class DockerSandbox:
    """Runs a plan in Docker: prepare, then one server and the run's K client containers
    (one per client, or a group of clients each)."""

    isolated = True
    name = "docker"

    def __init__(self, config: Config, client: docker.DockerClient | None = None) -> None:
        self.config = config
        self.client = client or docker.from_env(timeout=120)
        self.pool = WarmPool(config, self.client)
        self._removals: list[threading.Thread] = []

    def wait_for_removals(self) -> None:
        while self._removals:
            self._removals.pop().join()

    # --- public ---------------------------------------------------------------------------

    def run(self, plan: RunPlan, sink: RunSink, control: RunControl) -> RunOutcome:
        gpus = self._gpus_for(plan, sink)
        admission = Admission(self.config, plan)
        waited = time.monotonic()
        admission.wait(sink, control)  # before anything starts: never a run started half
        # Time spent waiting is not the run's (RQ's margin on the job covers it).
        control.deadline += time.monotonic() - waited
        try:
            return self._run_admitted(plan, sink, control, gpus)
        finally:
            admission.release()

    def _run_admitted(self, plan: RunPlan, sink: RunSink, control: RunControl, gpus) -> RunOutcome:
        started = time.monotonic()
        problem = ensure_host_firewall()
        if problem:
            if not self.config.SANDBOX_ALLOW_OPEN_HOST:
                raise SandboxRefused(f"{problem}. The run was not started.")
            sink.line("platform", "stderr", f"[flautim] warning: {problem}")
        prepare_dirs(plan)
        run = _Run(self, plan, sink, control)
        try:
            run.network = self.client.networks.create(
                network_name(plan), driver="bridge", internal=True, labels=run_labels(plan),
                options={"com.docker.network.bridge.name": bridge_name(plan.experiment_id, plan.attempt)},
            )
            if not any(gpus):
                run.take_from_pool(self.pool)
            outcome = run.phase_prepare(gpus)
            if outcome is None:
                sink.phase("running")
                outcome = run.phase_federation()
        except DockerException as exc:
            log.exception("docker failed for experiment %s", plan.experiment_id)
            outcome = RunOutcome("failed", "infrastructure", f"Docker error: {exc}")
        except UnsafePath as exc:
            log.exception("experiment %s: the run's folders are not as the worker made them", plan.experiment_id)
            outcome = RunOutcome("failed", "infrastructure", f"the run's folders were tampered with: {exc}")
        finally:
            run.stop()
            # Removing a dozen containers and a network takes a second or two; the outcome
            # (and the logs, drained above) need none of it, so the user's "finished" comes
            # first. replenish(), which the job calls next, waits for it.
            self._removals.append(threading.Thread(target=run.remove, name="sandbox-cleanup"))
            self._removals[-1].start()
        outcome.duration_s = time.monotonic() - started
        outcome.exits = outcome.exits or list(run.exits.values())
        return outcome

    def replenish(self) -> None:
        """Finish removing the last runs' containers, then top the warm pool up (after a
        run, and from the worker's maintenance)."""
        self.wait_for_removals()
        try:
            self.pool.refill()
        except (DockerException, OSError):
            log.exception("could not refill the warm pool")

    def run_single(self, plan: RunPlan, role: str, sink: RunSink, control: RunControl) -> RunOutcome:
        """Run one role alone (e.g. "inspect"), on its own internal network."""
        run = _Run(self, plan, sink, control)
        try:
            outcome = run.phase_single(role) or RunOutcome("succeeded", exits=list(run.exits.values()))
        except DockerException as exc:
            outcome = RunOutcome("failed", "infrastructure", f"Docker error: {exc}")
        finally:
            run.cleanup()
        return outcome

    # --- internals ------------------------------------------------------------------------

    def _gpus_for(self, plan: RunPlan, sink: RunSink) -> list[list[str]]:
        containers = len(plan.client_roles)
        if not plan.wants_gpu and not plan.requires_gpu:
            return gpu_assignment(containers, [], self.config.GPU_POLICY)
        available = host_gpus(self.config)
        if not available:
            if plan.requires_gpu:
                raise SandboxRefused(
                    "the hyperparameters ask for device='cuda' but this worker has no GPU"
                )
            sink.line("platform", "stderr", "[flautim] no GPU on this worker: running on the CPU")
        return gpu_assignment(containers, available, self.config.GPU_POLICY)


class _Run(Supervision):
    def __init__(self, sandbox: DockerSandbox, plan: RunPlan, sink: RunSink, control: RunControl):
        self.sandbox = sandbox
        self.client = sandbox.client
        self.config = sandbox.config
        self.plan = plan
        self.sink = sink
        self.control = control
        self.network = None
        self.containers: dict[str, object] = {}
        self.pool: WarmPool | None = None
        self.pooled: dict[str, Pooled] = {}
        self.threads: list[tuple[str, threading.Thread]] = []
        self.clients_started_s = 0.0
        self.exits: dict[str, ProcessExit] = {}
        self.oom_counts: dict[str, int] = {}
        self.killed: set[str] = set()
        self._last_beat = 0.0
        self._last_disk = 0.0

    # --- containers ---

    def take_from_pool(self, pool: WarmPool) -> None:
        """Claim warm containers for the server and clients; before `prepare` starts, since
        their folders become the run's partition folders (see warm_pool)."""
        self.pool = pool
        roles = ["server", *self.plan.client_roles]
        for role, pooled in zip(roles, pool.claim(len(roles)), strict=False):
            self.pooled[role] = pooled
            try:
                pool.bind_folders(pooled, self.plan, role)
            except OSError as exc:  # e.g. the pool on another file system: start it cold
                log.warning("warm-pool container for %s not usable (%s): starting it cold", role, exc)
                self._discard(role)
        if pool.size:
            self.sink.line("platform", "stdout", f"[flautim] {len(self.pooled)} of {len(roles)} "
                           "server and client containers taken warm from the pool")

    def _discard(self, role: str) -> None:
        pooled = self.pooled.pop(role)
        remove_container(pooled.container)
        self.pool.release([pooled])

    def _adopt(self, role: str) -> object:
        """Make a claimed pool container `role`: its name, limits, network, then its role."""
        pooled = self.pooled[role]
        container = pooled.container
        container.rename(container_name(self.plan, role))
        memory = role_memory_mb(self.config, self.plan, role)
        cpus = role_cpus(self.config, role)
        if memory != self.config.SANDBOX_CLIENT_MEMORY_MB or cpus != self.config.SANDBOX_CPUS_PER_CONTAINER:
            container.update(mem_limit=f"{memory}m", memswap_limit=f"{memory}m", **cpu_limits(cpus))
        self.client.api.disconnect_container_from_network(container.id, "none")
        self.network.connect(container)
        WarmPool.assign(pooled, role_command(self.plan, role), role_environment(self.config, self.plan, role))
        return container

    def start(self, role: str, gpus: list[str] | None = None) -> None:
        since = None
        container = None
        if role in self.pooled:
            since = time.time()  # what the pooled process printed before is not the run's
            try:
                container = self._adopt(role)
            except DockerException as exc:
                log.warning("could not adopt a warm-pool container for %s (%s): starting it cold", role, exc)
                self._discard(role)
                container = None
        if container is None:
            kwargs = container_kwargs(self.config, self.plan, role, gpus=gpus or None)
            for mount in role_mounts(self.plan, role):
                check_mount_source(Path(mount.host), self.config.data_path)
            container = self.client.containers.create(**kwargs)
            self.containers[role] = container
            container.start()
        else:
            self.containers[role] = container
        limit = self.config.SANDBOX_LOG_LIMIT_BYTES
        for stream in ("stdout", "stderr"):
            chunks = container.logs(
                stream=True, follow=True, stdout=stream == "stdout", stderr=stream == "stderr", since=since
            )
            thread = threading.Thread(
                target=_pump_safely, args=(chunks, self.sink, role, stream, limit),
                name=f"capture-{role}-{stream}", daemon=True,
            )
            thread.start()
            self.threads.append((role, thread))

    def kill(self, roles=None) -> None:
        for role, container in self.containers.items():
            if roles is not None and role not in roles:
                continue
            if role in self.exits:
                continue
            self.killed.add(role)
            try:
                container.kill()
            except (NotFound, APIError):
                pass

    def poll(self) -> None:
        """Record containers that have exited; track OOM kills while they still run.

        One listing of the run's running containers per poll, and an inspection only of
        those no longer in it, rather than an inspection of each of the K + 2 every poll."""
        running = self._running_ids()
        for role, container in self.containers.items():
            if role in self.exits:
                continue
            if container.id in running:
                self._track_oom(role, container.id)
                continue
            try:
                container.reload()
            except NotFound:
                self.exits[role] = ProcessExit(role, None, killed_by_us=role in self.killed)
                continue
            state = container.attrs.get("State", {})
            self._track_oom(role, container.id)
            if state.get("Status") in ("exited", "dead"):
                code = state.get("ExitCode")
                oom = bool(state.get("OOMKilled")) or self.oom_counts.get(role, 0) > 0 or (
                    code == 137 and role not in self.killed
                )
                self.exits[role] = ProcessExit(role, code, oom_killed=oom, killed_by_us=role in self.killed)
                if oom and role not in self.killed:
                    self.sink.line(
                        "platform", "stderr",
                        f"[flautim] {role} was killed: it used more than its memory limit",
                    )

    def _running_ids(self) -> set[str]:
        try:
            listed = self.client.api.containers(filters={"name": container_name(self.plan, "")}, quiet=True)
        except DockerException:
            return set()  # inspect each one instead
        return {entry["Id"] for entry in listed}

    def _track_oom(self, role: str, container_id: str) -> None:
        count = _cgroup_oom_kills(container_id)
        if count is not None:
            self.oom_counts[role] = max(self.oom_counts.get(role, 0), count)

    # --- phases ---

    def phase_single(self, role: str) -> RunOutcome | None:
        self.start(role)
        return self.wait_for(role, POLL_S)

    def phase_prepare(self, gpus: list[list[str]]) -> RunOutcome | None:
        """Partition the data while the server and client containers start and import.

        Those containers wait for PREPARED_MARKER in their control folder (the run's, or a
        pooled container's slot), created here only once `prepare` succeeded; if it fails
        they are killed with the rest.
        """
        began = time.monotonic()
        self.start("prepare")
        roles = [("server", None)] + [
            (role, gpus[j] if j < len(gpus) else None) for j, role in enumerate(self.plan.client_roles)
        ]
        # Creating a container is a Docker API round trip of ~0.1-0.3 s: do them together.
        with ThreadPoolExecutor(max_workers=START_PARALLELISM) as executor:
            list(executor.map(lambda rg: self.start(*rg), roles))
        self.clients_started_s = time.monotonic() - began
        if (outcome := self.wait_for("prepare", FAST_POLL_S)) is not None:
            return outcome
        for folder in {self.plan.control_dir, *(p.slot / "ctl" for p in self.pooled.values())}:
            create_signal(folder, PREPARED_MARKER)
        return None

    def phase_federation(self) -> RunOutcome:
        outcome = self.supervise_federation(self.plan.client_roles, POLL_S, FAST_POLL_S)
        self.poll()
        outcome.clients_started_s = self.clients_started_s
        return outcome

    def drain(self, roles: list[str] | None = None) -> None:
        for role, thread in self.threads:
            if roles is None or role in roles:
                thread.join(timeout=5)

    def cleanup(self) -> None:
        """Stop and remove every container and the network, whatever happened."""
        self.stop()
        self.remove()

    def stop(self) -> None:
        """Kill what still runs and drain its output (the logs are complete after this)."""
        self.kill()
        self.drain()

    def remove(self) -> None:
        never_adopted = [p.container for role, p in self.pooled.items() if role not in self.containers]
        # One removal is a Docker round trip of ~0.1-0.3 s; the run is not over until they
        # are all gone, so remove them together.
        with ThreadPoolExecutor(max_workers=START_PARALLELISM) as executor:
            list(executor.map(remove_container, [*self.containers.values(), *never_adopted]))
        if self.pool is not None:
            self.pool.release(list(self.pooled.values()))
        if self.network is not None:
            try:
                self.network.remove()
            except NotFound:
                pass
            except APIError:
                log.exception("could not remove network %s", self.network.name)


def _pump_safely(chunks, sink, source, stream, limit) -> None:
    try:
        pump_lines(chunks, sink, source, stream, limit)
    except Exception:  # a broken stream must not kill the worker; the run's outcome still counts
        log.exception("capturing %s of %s stopped", stream, source)


def _cgroup_oom_kills(container_id: str) -> int | None:
    """The kernel's OOM-kill count for the container's cgroup (v1 or v2), if readable.

    Docker's OOMKilled flag only covers the container's main process; a child killed by the
    memory limit (e.g. a ClientApp) shows up only here.
    """
    candidates = (
        (f"/sys/fs/cgroup/memory/docker/{container_id}/memory.oom_control", "oom_kill "),
        (f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.events", "oom_kill "),
        (f"/sys/fs/cgroup/docker/{container_id}/memory.events", "oom_kill "),
    )
    for path, key in candidates:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(key):
                try:
                    return int(line.split()[1])
                except (IndexError, ValueError):
                    return None
    return None
