"""A host's pool of started sandbox containers that have already imported torch and flwr.

A cold container spends its first seconds of CPU importing torch, flwr and flautim; a run's
server and ten clients starting together on a small host pay that eleven times before
round 1. The pool starts containers ahead of runs (`FLAUTIM_SANDBOX_WARM_POOL` of them per
host), in the CPU image, hardened like every sandbox container and with no network at all.
Each has a slot folder whose parts are mounted where a run's roles expect them (/bundle,
/data, /out read-write, /ctl) and runs `python -m flautim.fl pooled /ctl`: import, then
wait for the worker to write /ctl/role.json.

A run claims containers (an atomic mkdir in the slot, so workers sharing a host never take
the same one) and, before `prepare` starts, renames the slot's data folder to the role's
partition folder in the run's work folder (a group's folder, for a group of virtual
clients), and the server's out folder to the run's output folder: the mounts follow the folders, so `prepare` writes straight into what the pooled
container already sees, and the ingest reads checkpoints where it always does. Then it
renames the container to the role's name, gives it the role's limits, moves it from no
network to the run's internal network and writes its role. From there on it is the same as a
container started for the run, and it is removed with the run: a container is used once.
GPU runs never use the pool (device requests are fixed at creation).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from docker.errors import APIError, DockerException, NotFound

from flautim.config import Config
from flautim.fl.process_setup import POOL_READY

from .container_spec import (
    LABEL_HOST,
    LABEL_POOL,
    LABEL_POOL_SPEC,
    POOL_MOUNTS,
    pool_container_kwargs,
    pool_spec,
)
from .host_state import exclusive, pool_root
from .plan import RunPlan, role_clients
from .supervision import sandbox_readonly, sandbox_writable, worker_folder

log = logging.getLogger(__name__)

NAME_PREFIX = "flautim-pool-"
CLAIM_MARK = "claimed"
# A slot claimed this long ago whose container still has its pool name lost its run (the
# worker died between the claim and the rename): the next refill removes it.
STALE_CLAIM_S = 300


def remove_container(container) -> bool:
    """Remove a container, running or not; False when the engine refused (logged)."""
    try:
        container.remove(force=True, v=True)
    except NotFound:
        pass
    except APIError:
        log.exception("could not remove container %s", getattr(container, "name", "?"))
        return False
    return True


@dataclass
class Pooled:
    """A claimed pool container and its slot folder."""

    container: object
    slot: Path


class WarmPool:
    def __init__(self, config: Config, client) -> None:
        self.config = config
        self.client = client
        self.size = max(0, int(config.SANDBOX_WARM_POOL))
        self.root = pool_root(config)
        self.spec = pool_spec(config)

    # --- claiming ---

    def claim(self, count: int) -> list[Pooled]:
        """Up to `count` running, idle pool containers of the current image, now this run's."""
        if self.size == 0 or count <= 0:
            return []
        image = self._image_id()
        claimed: list[Pooled] = []
        for container in self._idle(image):
            if len(claimed) == count:
                break
            slot = self._slot(container)
            try:
                os.mkdir(slot / CLAIM_MARK)  # atomic: exactly one claimer wins
            except OSError:
                continue
            claimed.append(Pooled(container, slot))
        return claimed

    def bind_folders(self, pooled: Pooled, plan: RunPlan, role: str) -> None:
        """Make the slot's folders the run's: the data folder becomes the role's partition
        folder (a group's folder, holding its clients' folders), the server's out folder the
        run's output folder. Before `prepare` starts."""
        if role.startswith("clients-"):
            data = plan.group_dir(role)
            # The clients' empty folders move in first: the slot's folder then takes the
            # group's place and is the worker's, as prepare_dirs made the group's.
            for client in role_clients(role):
                os.rename(plan.client_dir(client), pooled.slot / "data" / f"client-{client}")
            worker_folder(pooled.slot / "data")
        elif role == "server":
            data = plan.server_data_dir
        else:
            data = plan.client_dir(int(role.removeprefix("client-")))
        os.rename(pooled.slot / "data", data)  # replaces the empty folder prepare_dirs made
        if role == "server":
            os.rename(pooled.slot / "out", plan.out_dir)
        else:
            sandbox_readonly(pooled.slot / "out")  # only the server writes an output
        bundle = pooled.slot / "bundle"
        for entry in plan.code_dir.iterdir():
            if entry.is_file() and not entry.is_symlink():
                shutil.copyfile(entry, bundle / entry.name)
        (bundle / "data").mkdir(exist_ok=True)

    @staticmethod
    def assign(pooled: Pooled, argv: list[str], env: dict[str, str]) -> None:
        """Tell the pooled process which role to run (written whole, then renamed into place)."""
        ctl = pooled.slot / "ctl"
        tmp = ctl / "role.json.tmp"
        tmp.write_text(json.dumps({"argv": argv, "env": env}))
        os.chmod(tmp, 0o644)
        os.replace(tmp, ctl / "role.json")

    def release(self, pooled: list[Pooled]) -> None:
        """Remove the slot folders of a finished run (its containers went with the run)."""
        for item in pooled:
            shutil.rmtree(item.slot, ignore_errors=True)

    # --- keeping it full ---

    def refill(self) -> int:
        """Remove dead, stale and outdated pool containers, then start new ones until the
        pool holds `size` idle ones. Returns how many were started."""
        if self.size == 0:
            return 0
        with self._lock():
            image = self._image_id()
            if image is None:
                return 0
            idle = 0
            containers = self._pool_containers()
            slots = {self._slot(c) for c in containers}
            for container in containers:
                if not container.name.startswith(NAME_PREFIX):
                    continue  # claimed and renamed: it belongs to a run now
                slot = self._slot(container)
                mark = slot / CLAIM_MARK
                outdated = not self._current(container, image)
                stale = mark.exists() and time.time() - mark.stat().st_mtime > STALE_CLAIM_S
                if outdated or stale or not slot.is_dir():
                    self._remove(container, slot)
                elif not mark.exists():
                    idle += 1
            for slot in self.root.iterdir():
                if slot.is_dir() and slot not in slots:
                    shutil.rmtree(slot, ignore_errors=True)  # its container is gone
            started = 0
            for _ in range(self.size - idle):
                try:
                    self._start_one()
                    started += 1
                except DockerException:
                    log.exception("could not start a warm-pool container")
                    break
            return started

    def ready(self) -> tuple[int, int]:
        """(idle containers done importing, idle containers)."""
        image = self._image_id()
        idle = self._idle(image) if image else []
        done = sum(1 for c in idle if POOL_READY.encode() in c.logs(tail=5))
        return done, len(idle)

    def drain(self) -> None:
        """Remove every idle pool container of this host (tests; an operator's cleanup)."""
        with self._lock():
            for container in self._pool_containers():
                if container.name.startswith(NAME_PREFIX):
                    self._remove(container, self._slot(container))

    # --- internals ---

    def _start_one(self) -> None:
        token = secrets.token_hex(6)
        slot = self.root / token
        slot.mkdir(mode=0o700)
        for folder, _target, read_only in POOL_MOUNTS:
            (slot / folder).mkdir()
            if read_only and folder != "data":
                os.chmod(slot / folder, 0o755)
            else:
                sandbox_writable(slot / folder)  # data: `prepare` writes it once it is a run's
        kwargs = pool_container_kwargs(self.config, NAME_PREFIX + token, str(slot))
        container = self.client.containers.create(**kwargs)
        container.start()

    def _image_id(self) -> str | None:
        try:
            return self.client.images.get(self.config.SANDBOX_IMAGE).id
        except (NotFound, APIError):
            return None

    def _pool_containers(self) -> list:
        """This pool's containers (another data folder on the same host has its own pool)."""
        found = self.client.containers.list(
            all=True, filters={"label": [LABEL_POOL, f"{LABEL_HOST}={socket.gethostname()}"]}
        )
        return [c for c in found if self._slot(c).parent == self.root]

    def _idle(self, image: str | None) -> list:
        return [
            c for c in self._pool_containers()
            if c.name.startswith(NAME_PREFIX) and self._current(c, image)
            and not (self._slot(c) / CLAIM_MARK).exists()
        ]

    def _current(self, container, image: str | None) -> bool:
        """Running, from the current image, made under the current settings."""
        return (container.status == "running" and container.attrs.get("Image") == image
                and container.labels.get(LABEL_POOL_SPEC) == self.spec)

    def _slot(self, container) -> Path:
        # The label, set at creation, survives the rename a run gives the container.
        return Path(container.labels.get(LABEL_POOL, "/nonexistent"))

    def _remove(self, container, slot: Path) -> None:
        if remove_container(container):
            shutil.rmtree(slot, ignore_errors=True)

    def _lock(self):
        """One refill at a time per host (several workers may share it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return exclusive(self.root.parent / f".{self.root.name}.lock")
