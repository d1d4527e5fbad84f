"""LocalSandbox: the same run as local processes. NOT isolated: user code runs with the
worker's rights. For laptops without Docker and the embedded demo; refused in production."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from flautim.config import Config
from flautim.fl.process_group import free_port

from .capture import pump_lines
from .plan import (
    GROUP_ENVIRONMENT,
    ProcessExit,
    RunControl,
    RunOutcome,
    RunPlan,
    RunSink,
    SandboxRefused,
    role_clients,
)
from .supervision import Supervision

POLL_S = 0.3
ROOT = Path(__file__).resolve().parents[2]


class LocalSandbox:
    """Runs prepare, server and clients as child processes of the worker."""

    isolated = False
    name = "local"
    # Shown in the UI next to a run.
    warning = "processos locais, sem isolamento"

    def __init__(self, config: Config) -> None:
        if config.ENV == "production":
            raise SandboxRefused(
                "the local sandbox runs user code without isolation and is refused in "
                "production; set FLAUTIM_SANDBOX_BACKEND=docker"
            )
        self.config = config

    def replenish(self) -> None:
        """Nothing to keep warm: local runs fork from a warm parent already."""

    def run(self, plan: RunPlan, sink: RunSink, control: RunControl) -> RunOutcome:
        if plan.requires_gpu:
            raise SandboxRefused("the hyperparameters ask for device='cuda'; the local backend has no GPU scheduling")
        started = time.monotonic()
        run = _LocalRun(self.config, plan, sink, control)
        try:
            outcome = run.single("prepare", ["prepare", str(run.bundle), str(plan.work_dir)])
            if outcome is None:
                group_partitions(plan)
                sink.phase("running")
                outcome = run.federation()
        finally:
            run.cleanup()
        outcome.duration_s = time.monotonic() - started
        outcome.exits = outcome.exits or list(run.exits.values())
        return outcome

    def run_single(self, plan: RunPlan, role: str, sink: RunSink, control: RunControl) -> RunOutcome:
        run = _LocalRun(self.config, plan, sink, control)
        try:
            outcome = run.single(role, [role, str(run.bundle)]) or RunOutcome(
                "succeeded", exits=list(run.exits.values())
            )
        finally:
            run.cleanup()
        return outcome


def group_partitions(plan: RunPlan) -> None:
    """Move the client folders `prepare` wrote side by side into their groups' folders,
    where the Docker backend's mounts put them (`RunPlan.client_dir`)."""
    for client in range(plan.clients):
        folder = plan.client_dir(client)
        if folder.parent != plan.work_dir:
            folder.parent.mkdir(exist_ok=True)
            os.rename(plan.work_dir / folder.name, folder)


class _LocalRun(Supervision):
    def __init__(self, config: Config, plan: RunPlan, sink: RunSink, control: RunControl):
        self.config = config
        self.plan = plan
        self.sink = sink
        self.control = control
        self.procs: dict[str, subprocess.Popen] = {}
        self.threads: list[tuple[str, threading.Thread]] = []
        self.exits: dict[str, ProcessExit] = {}
        self.killed: set[str] = set()
        self._last_beat = 0.0
        self._last_disk = 0.0
        # The bundle as the runtime expects it: code plus data/ (a link to the dataset).
        self.bundle = plan.work_dir.parent / "bundle"
        self.bundle.mkdir(parents=True, exist_ok=True)
        for name in ("dataset.py", "api.py", "hyperparameters.py"):
            src = plan.code_dir / name
            dst = self.bundle / name
            if src.exists() and not dst.exists():
                # Copied, not linked: error locations are found by the file's real path
                # inside the bundle, which a link would point outside of.
                shutil.copyfile(src, dst)
        data_link = self.bundle / "data"
        if not data_link.exists():
            data_link.symlink_to(plan.data_dir, target_is_directory=True)
        plan.work_dir.mkdir(parents=True, exist_ok=True)
        plan.out_dir.mkdir(parents=True, exist_ok=True)

    def start(self, role: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        env = {
            k: v for k, v in os.environ.items()
            # The user's code gets no platform secrets through the environment.
            if not k.startswith("FLAUTIM_") and k not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(
            PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", FLAUTIM_ROLE=role,
            FLAUTIM_EXPERIMENT_ID=str(self.plan.experiment_id), FLWR_TELEMETRY_ENABLED="0",
            FLWR_DISABLE_UPDATE_CHECK="1", FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
            FLWR_HOME=str(self.plan.work_dir / ".flwr"), CUDA_VISIBLE_DEVICES="",
            **(extra_env or {}),
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "flautim.fl", *args],
            cwd=str(self.plan.work_dir), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        self.procs[role] = proc
        limit = self.config.SANDBOX_LOG_LIMIT_BYTES
        for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            chunks = iter(lambda p=pipe: p.read1(65536), b"")
            thread = threading.Thread(
                target=_drain_after_limit, args=(chunks, self.sink, role, stream, limit), daemon=True
            )
            thread.start()
            self.threads.append((role, thread))

    def kill(self, roles=None) -> None:
        for role, proc in self.procs.items():
            if (roles is not None and role not in roles) or role in self.exits:
                continue
            self.killed.add(role)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def poll(self) -> None:
        for role, proc in self.procs.items():
            if role in self.exits:
                continue
            code = proc.poll()
            if code is not None:
                # A negative code is the signal that ended it; -9 without us is most likely
                # the kernel's OOM killer.
                oom = code == -signal.SIGKILL and role not in self.killed
                self.exits[role] = ProcessExit(role, code, oom_killed=oom, killed_by_us=role in self.killed)

    def single(self, role: str, args: list[str]) -> RunOutcome | None:
        self.start(role, args)
        return self.wait_for(role, POLL_S)

    def federation(self) -> RunOutcome:
        plan = self.plan
        address = f"127.0.0.1:{free_port()}"
        transport = [] if plan.transport == "fast" else ["--transport", plan.transport]
        began = time.monotonic()
        self.start("server", ["server", str(self.bundle), "--data", str(plan.server_data_dir),
                              "--out", str(plan.out_dir), "--listen", address,
                              "--clients", str(plan.clients), *transport])
        clients = plan.client_roles
        for role in clients:
            hosted = role_clients(role)
            if len(hosted) == 1:
                self.start(role, ["client", str(self.bundle), "--data", str(plan.client_dir(hosted[0])),
                                  "--server", address, "--client-id", str(hosted[0]), *transport])
            else:  # a group of virtual clients in one process, as in its Docker container
                self.start(role, ["clients", str(self.bundle), "--data-root", str(plan.group_dir(role)),
                                  "--server", address, "--ids", f"{hosted[0]}-{hosted[-1]}"],
                           GROUP_ENVIRONMENT)
        clients_started = time.monotonic() - began
        outcome = self.supervise_federation(clients, POLL_S, POLL_S)
        outcome.clients_started_s = clients_started
        return outcome

    def drain(self, roles: list[str] | None = None) -> None:
        for role, thread in self.threads:
            if roles is None or role in roles:
                thread.join(timeout=5)

    def cleanup(self) -> None:
        """Kill every process group (a user's leftover children too) and reap them."""
        for role, proc in self.procs.items():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if role not in self.exits:
                self.killed.add(role)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.drain()


def _drain_after_limit(chunks, sink, source, stream, limit) -> None:
    """Like pump_lines, but keeps reading (discarding) past the cap so the child never blocks
    on a full pipe."""
    pump_lines(chunks, sink, source, stream, limit)
    for _ in chunks:
        pass
