"""What a run process does before its real work: import the heavy modules once, share the
cores, quiet Flower.

Imports inside these functions are the point of them: a process calls `warm_client_imports`
or `warm_server_imports` when it chooses to pay for torch, flwr and flautim's apps (~2 s of
CPU) — before forking its clients, or while `prepare` still runs — and importing this module
costs nothing, so light processes (the supervisors, `prepare`, `inspect`) can use it too.
"""

from __future__ import annotations

import logging
import os

# Printed once a pooled process has imported everything (the warm pool counts it as ready).
POOL_READY = "flautim: pooled process ready"


def warm_client_imports() -> None:
    """Import what every client needs once, in the parent, before forking them."""
    import torch
    import torch.optim

    import flautim.fl.apps  # noqa: F401
    import flautim.fl.session  # noqa: F401
    import flautim.fl.transport.fast  # noqa: F401

    # The first optimizer imports torch._dynamo (~1 s): pay it once here, not per client.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def warm_server_imports() -> None:
    import torch  # noqa: F401

    import flautim.fl.apps  # noqa: F401
    import flautim.fl.session  # noqa: F401
    import flautim.fl.transport.fast  # noqa: F401


def limit_torch_threads(share: int) -> None:
    """Give each of `share` processes training at once its slice of the cores.

    N clients train in parallel; with torch's default (all cores each) they oversubscribe
    the machine and every round gets slower.
    """
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, share))
    # A sandbox container sets OMP_NUM_THREADS to its CPU quota: more threads than the quota
    # get the whole container throttled by the CFS scheduler.
    quota = os.environ.get("OMP_NUM_THREADS", "")
    if quota.isdigit() and int(quota) > 0:
        threads = min(threads, int(quota))
    torch.set_num_threads(threads)


def quiet_flower() -> None:
    """Flower's INFO lines repeat what our events say; keep its warnings and errors
    (`FLAUTIM_FLOWER_LOG=info` keeps them all)."""
    if os.environ.get("FLAUTIM_FLOWER_LOG", "").lower() not in {"1", "info", "debug"}:
        # Importing flwr sets its logger to DEBUG, so lower its console handler after that.
        from flwr.supercore import logger as flower_logger

        flower_logger.console_handler.setLevel(logging.WARNING)
