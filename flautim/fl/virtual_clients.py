"""Virtual clients: N logical clients of a run in K client processes.

A client process hosts several clients: it builds the user's model once and, for each
message, acts as the client it is addressed to (`ClientSession.become`: that client's id,
logs, errors and partition, read only when the client is sampled). K follows the host, not
N: with N ≤ K every client still has a process of its own, as before.
"""

from __future__ import annotations

import os

# A run with at most this many clients per core gives each client a process of its own (on
# the platform, a container), as runs had before virtual clients.
SMALL_RUN_CLIENTS_PER_CORE = 8
# Larger runs share processes, two per core: one keeps a core busy while the other waits for
# the server's next message. Each more process costs memory (a forked process's own pages;
# on the platform a ~240 MiB container) and bought no speed (benchmarks/README.md, K).
GROUPS_PER_CORE = 2
# What one forked client process costs on top of its warm parent (torch's allocator, one
# model and optimizer, one partition of the bundled examples), with a margin.
PROCESS_MEMORY_BYTES = 256 * 2**20


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available_memory_bytes() -> int | None:
    """MemAvailable of this host (None where /proc/meminfo is unreadable)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def client_processes(
    num_clients: int, cores: int | None = None, memory_bytes: int | None = None,
    process_bytes: int = PROCESS_MEMORY_BYTES,
) -> int:
    """K: how many processes host a run's `num_clients` clients, given the cores and the
    memory the run may use (None: not bounded by memory) at `process_bytes` each (the
    platform passes its client container's memory limit). Never more than `num_clients`.

    `FLAUTIM_CLIENT_PROCESSES` fixes K (a sandbox container is one client process; tests)."""
    fixed = os.environ.get("FLAUTIM_CLIENT_PROCESSES", "").strip()
    if fixed:
        if not fixed.isdigit() or int(fixed) < 1:
            raise ValueError(f"FLAUTIM_CLIENT_PROCESSES must be a whole number >= 1, got {fixed!r}")
        return min(int(num_clients), int(fixed))
    cores = max(1, cores or available_cores())
    k = num_clients if num_clients <= SMALL_RUN_CLIENTS_PER_CORE * cores else GROUPS_PER_CORE * cores
    if memory_bytes is not None:
        k = min(k, max(1, memory_bytes // max(1, process_bytes)))
    return max(1, min(int(num_clients), k))


def split_clients(client_ids: list[int], processes: int) -> list[list[int]]:
    """`client_ids` in `processes` contiguous groups of near-equal size (sampling is random,
    so contiguous groups share a round's work as evenly as any other split, and stay short
    on a command line: `--ids 0-249`)."""
    processes = max(1, min(processes, len(client_ids)))
    size, extra = divmod(len(client_ids), processes)
    groups, start = [], 0
    for i in range(processes):
        end = start + size + (1 if i < extra else 0)
        groups.append(client_ids[start:end])
        start = end
    return groups
