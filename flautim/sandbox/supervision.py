"""What both backends share: preparing the run's folders, watching disk use, judging exits."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .plan import ProcessExit, RunOutcome, RunPlan

SANDBOX_UID = 10001


def prepare_dirs(plan: RunPlan) -> None:
    """Create the scratch and output folders, writable by the sandbox's user only.

    The partition folders exist before `prepare` fills them, so the server and client
    containers can mount them and start while it runs.
    """
    (plan.code_dir / "data").mkdir(parents=True, exist_ok=True)
    partitions = [plan.server_data_dir, *(plan.client_dir(i) for i in range(plan.clients))]
    for path in (plan.work_dir, plan.out_dir, *partitions):
        path.mkdir(parents=True, exist_ok=True)
        sandbox_writable(path)


def sandbox_writable(path: Path) -> None:
    """Let the sandbox's user (and the worker) write `path`, and nobody else where we can."""
    if os.geteuid() == 0:
        os.chown(path, SANDBOX_UID, SANDBOX_UID)
        os.chmod(path, 0o700)
    else:
        # A non-root worker cannot give the folder away; the sandbox's user must still
        # write it. The folder sits inside a private folder of the worker's.
        os.chmod(path, 0o777)


def sandbox_readonly(path: Path) -> None:
    """Take back `path` from the sandbox's user: it may read it, never write it."""
    if os.geteuid() == 0:
        os.chown(path, 0, 0)
    os.chmod(path, 0o555)


def tree_bytes(root: Path, max_entries: int = 200_000) -> int:
    """Bytes under `root`, never following links; stops counting after `max_entries`."""
    total = 0
    seen = 0
    stack = [str(root)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_entries:
                        return total
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


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
            limit_mb = self.config.SANDBOX_OUTPUT_LIMIT_MB
            used = tree_bytes(self.plan.out_dir) + tree_bytes(self.plan.work_dir)
            if used > limit_mb * 2**20:
                self.sink.line(
                    "platform", "stderr",
                    f"[flautim] the run wrote {used // 2**20} MB, more than its {limit_mb} MB: stopping it",
                )
                self.kill()
                return RunOutcome("failed", "user_code", f"the run wrote more than {limit_mb} MB of files")
        return None
