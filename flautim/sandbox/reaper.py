"""Removing what dead workers left behind, by label, and failing their experiments.

Runs at every worker start. A run is orphaned when its Redis heartbeat is gone (the job that
owned it refreshes it every few seconds). Its containers and network are removed and its
experiment, if still preparing or running, is marked failed (infrastructure) with the reason,
so nothing stays "running" forever.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from .container_spec import LABEL_ATTEMPT, LABEL_EXPERIMENT, LABEL_POOL, LABEL_ROLE

log = logging.getLogger(__name__)

# Inspections have no heartbeat; their leftovers are removed once this old.
INSPECT_MAX_AGE_S = 900


# A warm-pool container a run claimed carries no run labels (labels are fixed at creation);
# the run renamed it to container_name(plan, role).
RUN_NAME = re.compile(r"^flautim-e(\d+)-a(\d+)-")


def run_of(container) -> tuple[int, int] | None:
    """(experiment id, attempt) of a run's container, from its labels or, for a claimed
    warm-pool container, its name; None for anything else (an idle pool container)."""
    labels = container.labels or {}
    if LABEL_EXPERIMENT in labels:
        try:
            return int(labels.get(LABEL_EXPERIMENT, "")), int(labels.get(LABEL_ATTEMPT, ""))
        except ValueError:
            return None
    if LABEL_POOL in labels and (match := RUN_NAME.match(container.name or "")):
        return int(match[1]), int(match[2])
    return None


def reap_containers(docker_client, alive: Callable[[int, int], bool]) -> list[str]:
    """Remove the containers and networks of runs for which `alive` says False."""
    removed: list[str] = []
    candidates = {
        c.id: c for label in (LABEL_EXPERIMENT, LABEL_POOL)
        for c in docker_client.containers.list(all=True, filters={"label": label})
    }
    for container in candidates.values():
        labels = container.labels or {}
        run = run_of(container)
        if run is None:
            continue
        experiment_id, attempt = run
        if labels.get(LABEL_ROLE) == "inspect":
            if _age_s(container) < INSPECT_MAX_AGE_S:
                continue
        elif alive(experiment_id, attempt):
            continue
        try:
            container.remove(force=True, v=True)
            removed.append(container.name)
        except Exception:  # already gone, or the engine refused: the next start retries
            log.warning("reaper could not remove %s", container.name)
    for network in docker_client.networks.list(filters={"label": LABEL_EXPERIMENT}):
        labels = network.attrs.get("Labels") or {}
        try:
            experiment_id = int(labels.get(LABEL_EXPERIMENT, ""))
            attempt = int(labels.get(LABEL_ATTEMPT, ""))
        except ValueError:
            continue
        if experiment_id and alive(experiment_id, attempt):
            continue
        try:
            network.reload()
            if not network.attrs.get("Containers"):
                network.remove()
                removed.append(network.name)
        except Exception:
            log.warning("reaper could not remove network %s", network.name)
    return removed


def _age_s(container) -> float:
    from datetime import datetime

    created = container.attrs.get("Created", "")
    try:
        stamp = datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return float("inf")
    return time.time() - stamp.timestamp()
