"""What both backends share: preparing the run's folders, watching limits and disk use,
waiting on the run's processes, judging exits."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .plan import ProcessExit, RunOutcome, RunPlan
from .untrusted_files import usage

SANDBOX_UID = 10001


def prepare_dirs(plan: RunPlan) -> None:
    """Create the run's folders: the partition and output folders writable by the sandbox's
    user only, inside folders only the worker writes (so none can be swapped for a link).

    The partition folders exist before `prepare` fills them, so the server and client
    containers can mount them and start while it runs.
    """
    (plan.code_dir / "data").mkdir(parents=True, exist_ok=True)
    for path in (plan.work_dir, plan.control_dir, *plan.group_dirs):
        path.mkdir(parents=True, exist_ok=True)
        worker_folder(path)
    for path in (plan.out_dir, *plan.partition_dirs):
        path.mkdir(parents=True, exist_ok=True)
        sandbox_writable(path)


def sandbox_ids() -> tuple[int, int]:
    """The uid and gid user code runs as: its own when the worker is root; the worker's
    otherwise, since a worker that is not root can neither give a folder away nor remove
    what another user wrote (the containers see only their mounts either way)."""
    if os.geteuid() == 0:
        return SANDBOX_UID, SANDBOX_UID
    return os.geteuid(), os.getegid()


def sandbox_writable(path: Path) -> None:
    """Let the sandbox's user write `path`, and nobody else."""
    if os.geteuid() == 0:
        os.chown(path, *sandbox_ids())
    os.chmod(path, 0o700)


def worker_folder(path: Path) -> None:
    """Make `path` the worker's: everyone may read it, only the worker write in it."""
    if os.geteuid() == 0:
        os.chown(path, 0, 0)
    os.chmod(path, 0o755)


def sandbox_readonly(path: Path) -> None:
    """Take back `path` from the sandbox's user: it may read it, never write it."""
    if os.geteuid() == 0:
        os.chown(path, 0, 0)
    os.chmod(path, 0o555)


def classify_failure(exits: list[ProcessExit], phase: str) -> RunOutcome:
    """Failed processes → an outcome: out of memory wins, then the user's code."""
    oom = [e for e in exits if e.oom_killed and not e.killed_by_us]
    if oom:
        names = ", ".join(e.source for e in oom)
        return RunOutcome(
            "failed",
            "out_of_memory",
            f"{names} ran out of memory (killed by the memory limit) during {phase}",
            exits=exits,
        )
    failed = [e for e in exits if e.exit_code not in (0, None) and not e.killed_by_us]
    names = ", ".join(f"{e.source} (exit code {e.exit_code})" for e in failed) or "a process"
    return RunOutcome("failed", "user_code", f"{names} failed during {phase}; see its logs", exits=exits)


class LimitChecks:
    """Cancel, deadline and disk use, checked from outside the user's processes; shared by
    the Docker and local backends. The run provides config, plan, control, sink, kill()
    and the timestamps `_last_beat` / `_last_disk`."""

    def check_limits(self) -> RunOutcome | None:
        """The outcome when the run must stop, else None."""
        now = time.monotonic()
        if now - self._last_beat > 5:
            self._last_beat = now
            self.control.beat()
        if self.control.cancelled():
            self.sink.line("platform", "stderr", "[flautim] cancelled by a user: stopping the run")
            self.kill()
            return RunOutcome("cancelled", reason="cancelled by a user")
        if self.control.timed_out():
            self.sink.line("platform", "stderr", "[flautim] time limit reached: stopping the run")
            self.kill()
            return RunOutcome(
                "timed_out", "time_limit",
                f"the run passed its time limit of {self.plan.time_limit_s} s",
            )
        if now - self._last_disk > 2:
            self._last_disk = now
            return self._check_disk()
        return None

    def _check_disk(self) -> RunOutcome | None:
        limit_mb = self.config.SANDBOX_OUTPUT_LIMIT_MB
        max_files = self.config.SANDBOX_OUTPUT_MAX_FILES
        used = usage([self.plan.out_dir, self.plan.work_dir], limit_mb * 2**20, max_files)
        if used.bytes > limit_mb * 2**20:
            what = f"more than {limit_mb} MB of files"
        elif used.entries > max_files:
            what = f"more than {max_files} files and folders"
        else:
            return None
        self.sink.line("platform", "stderr", f"[flautim] the run wrote {what}: stopping it")
        self.kill()
        return RunOutcome("failed", "user_code", f"the run wrote {what}")


# After the server ends, clients get this long to read "bye" and leave before they are killed.
CLIENT_GRACE_S = 15
# After every client ends, a server still waiting for them is stopped after this long.
SERVER_ORPHAN_GRACE_S = 45


class Supervision(LimitChecks):
    """The backends' wait loops. A backend's run provides, beside LimitChecks' needs,
    `exits` (role -> ProcessExit, filled by poll()), poll(), kill(roles) and drain(roles)."""

    def wait_for(self, role: str, poll_s: float) -> RunOutcome | None:
        """Until `role` exits: None when it succeeded, else the run's outcome."""
        while True:
            stop = self.check_limits()
            self.poll()
            if stop is not None:
                return stop
            if role in self.exits:
                self.drain([role])
                if self.exits[role].exit_code != 0:
                    return classify_failure([self.exits[role]], role)
                return None
            time.sleep(poll_s)

    def supervise_federation(self, clients: list[str], poll_s: float, after_server_poll_s: float) -> RunOutcome:
        """Until the server and every client have exited; a stop (cancel, time, disk) ends it
        at once. Clients still running after the server ended get CLIENT_GRACE_S (none for
        Flower's SuperNodes, which never leave on their own); a server whose clients all
        ended is stopped after SERVER_ORPHAN_GRACE_S."""
        grace = 0 if self.plan.transport == "flower" else CLIENT_GRACE_S
        server_done_at = clients_dead_at = None
        while True:
            stop = self.check_limits()
            self.poll()
            if stop is not None:
                return stop
            now = time.monotonic()
            if "server" in self.exits:
                server_done_at = server_done_at or now
                pending = [r for r in clients if r not in self.exits]
                if pending and now - server_done_at > grace:
                    self.kill(pending)
                if not pending:
                    break
            elif all(r in self.exits for r in clients):
                clients_dead_at = clients_dead_at or now
                if now - clients_dead_at > SERVER_ORPHAN_GRACE_S:
                    self.sink.line("platform", "stderr", "[flautim] every client has stopped; stopping the server")
                    self.kill(["server"])
            time.sleep(after_server_poll_s if server_done_at or self._finishing() else poll_s)
        self.drain()
        exits = list(self.exits.values())
        bad_clients = [e for e in (self.exits[r] for r in clients)
                       if e.exit_code not in (0, None) and not e.killed_by_us]
        if self.exits["server"].exit_code == 0 and not any(e.oom_killed for e in exits if not e.killed_by_us):
            outcome = RunOutcome("succeeded", exits=exits)
            if bad_clients:
                outcome.reason = "; ".join(f"{e.source} exited with code {e.exit_code}" for e in bad_clients)
            return outcome
        return classify_failure(exits, "the federation")

    def _finishing(self) -> bool:
        """The runtime reported the run's end (the sink saw `run_finished`): its processes
        exit within a second, and the user waits for that, so look more often."""
        return getattr(self.sink, "run_finished", None) is not None
