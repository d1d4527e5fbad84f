"""Peak memory of every process a benchmarked run starts, sampled while it runs.

Ray's driver starts gcs_server and raylet, the raylet starts the worker processes (the
client actors), and when the driver exits they are orphaned: without help they are
re-parented to init and leave the tree of the process that was launched. So the benchmark
process makes itself a child subreaper (Linux `prctl(PR_SET_CHILD_SUBREAPER)`): orphans of
anything it started are re-parented to it, and "the tree" is every descendant of the
benchmark process. psutil has no prctl, and `python-prctl` needs libcap headers to build for
this one call, hence ctypes.

Each sample sums RSS and PSS (`/proc/PID/smaps_rollup`, via psutil) over the tree. RSS counts
pages shared between processes (forked children, shared libraries, Ray's shared-memory
object store) once per process; PSS splits each shared page between its sharers, so the PSS
sum is the tree's own memory. PSS sampled while a process forks still overstates it a little.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from typing import Any

import psutil

PR_SET_CHILD_SUBREAPER = 36
GIB = 1024**3


def become_subreaper() -> None:
    """Keep the orphans of every process started from here in this process's tree."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def tree_sample() -> tuple[int, int, int]:
    """(RSS sum, PSS sum, process count) over every descendant of this process."""
    rss = pss = count = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += info.rss
        pss += info.pss
        count += 1
    return rss, pss, count


class TreeMemory:
    """`with TreeMemory() as m: run(...)`, then `m.figures()`: the peaks of the tree's
    summed RSS and PSS (GiB) and its most processes. On exit it waits for orphans (Ray's
    daemons wind down for a few seconds after the driver), ends any still running after
    `linger_s` (they are this benchmark's), and reaps them."""

    def __init__(self, interval_s: float = 0.5, linger_s: float = 30.0) -> None:
        self.interval_s = interval_s
        self.linger_s = linger_s
        self.peak_rss = self.peak_pss = self.peak_processes = 0
        self.left_running = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _sample(self) -> None:
        rss, pss, count = tree_sample()
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, count)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> TreeMemory:
        become_subreaper()
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._reap()
        deadline = time.monotonic() + self.linger_s
        while (left := self._live_descendants()) and time.monotonic() < deadline:
            time.sleep(0.5)
            self._reap()
        self.left_running = len(left)
        for proc in left:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(left, timeout=10)
        self._reap()

    @staticmethod
    def _live_descendants() -> list[psutil.Process]:
        live = []
        for proc in psutil.Process().children(recursive=True):
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    live.append(proc)
            except psutil.NoSuchProcess:
                pass
        return live

    @staticmethod
    def _reap() -> None:
        # Orphans re-parented here become this process's zombies until waited for.
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def figures(self) -> dict[str, float]:
        return {
            "peak_rss_gib": self.peak_rss / GIB,
            "peak_pss_gib": self.peak_pss / GIB,
            "peak_processes": self.peak_processes,
            "left_running": self.left_running,
        }
