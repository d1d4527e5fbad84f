"""The hardened settings of every sandbox container, as a pure function of the run.

Kept free of Docker calls so the security properties are unit-tested directly: non-root,
read-only root with a size-limited tmpfs, no capabilities, no privilege escalation, memory
without swap, a CPU quota, a process limit, capped logs, only the run's internal network,
and labels that tie the container to its experiment and attempt (the reaper uses them).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass

from docker.types import Ulimit

from flautim.config import Config
from flautim.fl.virtual_clients import available_cores

from .plan import GROUP_ENVIRONMENT, RunPlan, role_clients
from .supervision import sandbox_ids

LABEL_EXPERIMENT = "org.flautim.experiment"
LABEL_ATTEMPT = "org.flautim.attempt"
LABEL_ROLE = "org.flautim.role"
LABEL_HOST = "org.flautim.host"
# Set on warm-pool containers (see warm_pool.py), which carry no experiment labels: the
# container's slot folder on the host.
LABEL_POOL = "org.flautim.pool"
LABEL_POOL_SPEC = "org.flautim.pool.spec"
SERVER_PORT = 9092
# Docker's own log file per container is capped too, so printing gigabytes fills no disk.
DOCKER_LOG_MAX_SIZE = "20m"
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Mount:
    host: str
    target: str
    read_only: bool = True


def container_name(plan: RunPlan, role: str) -> str:
    return f"flautim-e{plan.experiment_id}-a{plan.attempt}-{role}"


def network_name(plan: RunPlan) -> str:
    return f"flautim-e{plan.experiment_id}-a{plan.attempt}"


def run_labels(plan: RunPlan, role: str | None = None) -> dict[str, str]:
    labels = {
        LABEL_EXPERIMENT: str(plan.experiment_id),
        LABEL_ATTEMPT: str(plan.attempt),
        LABEL_HOST: socket.gethostname(),
    }
    if role is not None:
        labels[LABEL_ROLE] = role
    return labels


def role_mounts(plan: RunPlan, role: str) -> list[Mount]:
    """Each role sees only what it needs: prepare the data, a client its own partition.

    No mount source lies inside a folder the sandbox can write: `prepare` gets each
    partition folder as a mount of its own under a tmpfs /work (not the folder holding
    them), so it can fill them but never swap one for a link before a client mounts it.
    """
    code = Mount(str(plan.code_dir), "/bundle", True)
    control = Mount(str(plan.control_dir), "/ctl", True)
    if role == "prepare":
        return [code, Mount(str(plan.data_dir), "/bundle/data", True),
                *(Mount(str(folder), f"/work/{folder.name}", False) for folder in plan.partition_dirs)]
    if role == "inspect":
        return [code, Mount(str(plan.data_dir), "/bundle/data", True)]
    if role == "server":
        return [code, Mount(str(plan.server_data_dir), "/data", True),
                Mount(str(plan.out_dir), "/out", False), control]
    if role.startswith("client-"):
        index = int(role.removeprefix("client-"))
        return [code, Mount(str(plan.client_dir(index)), "/data", True), control]
    if role.startswith("clients-"):
        # A group: the folder of its clients' partition folders, read-only. It is the
        # worker's, so the sandbox (`prepare` mounts each client folder, never it) cannot
        # swap a client's folder for a link.
        return [code, Mount(str(plan.group_dir(role)), "/data", True), control]
    raise ValueError(f"unknown sandbox role {role!r}")


FLOWER_NODE_MEMORY_MB = 1024
# Created by the worker in the run's control folder (mounted read-only at /ctl in the server
# and the clients, not at all in `prepare`) once `prepare` has succeeded.
PREPARED_MARKER = "prepared"


def role_command(plan: RunPlan, role: str) -> list[str]:
    """The `python -m flautim.fl` arguments (the image's entry point) of a role."""
    flower = plan.transport == "flower"
    if role == "prepare":
        return ["prepare", "/bundle", "/work"]
    if role == "inspect":
        return ["inspect", "/bundle"]
    # The server and clients start while `prepare` runs and wait for the worker's marker.
    after = ["--after", f"/ctl/{PREPARED_MARKER}"]
    if role == "server":
        # With the Flower transport the server container runs the SuperLink and the ServerApp.
        return ["flower-server" if flower else "server", "/bundle", "--data", "/data", "--out", "/out",
                "--listen", f"0.0.0.0:{SERVER_PORT}", "--clients", str(plan.clients), *after]
    server = ["--server", f"{container_name(plan, 'server')}:{SERVER_PORT}"]
    if role.startswith("client-"):
        index = role.removeprefix("client-")
        # ... and each client container one SuperNode.
        return ["flower-client" if flower else "client", "/bundle", "--data", "/data", *server,
                "--client-id", index, *after]
    if role.startswith("clients-"):
        # A group of virtual clients in one process (GROUP_ENVIRONMENT); the fast transport.
        hosted = role_clients(role)
        return ["clients", "/bundle", "--data-root", "/data", *server,
                "--ids", f"{hosted[0]}-{hosted[-1]}", *after]
    raise ValueError(f"unknown sandbox role {role!r}")


def gpu_assignment(clients: int, gpu_ids: list[str], policy: str) -> list[list[str]]:
    """The GPUs each of a run's `clients` client containers gets (docs/gpu.md): all of them
    ("share"), or ("split") the host's GPUs dealt round-robin — GPU j to container j mod K —
    so with more containers than GPUs each gets one and a GPU serves several, and with fewer
    each gets its own disjoint set and none is left idle."""
    if not gpu_ids:
        return [[] for _ in range(clients)]
    if policy == "split":
        if clients >= len(gpu_ids):
            return [[gpu_ids[i % len(gpu_ids)]] for i in range(clients)]
        return [gpu_ids[i::clients] for i in range(clients)]
    return [list(gpu_ids) for _ in range(clients)]


def role_memory_mb(config: Config, plan: RunPlan, role: str) -> int:
    """The memory (and memory+swap) limit of `role`'s container."""
    if role in ("server", "prepare", "inspect"):
        return config.SANDBOX_SERVER_MEMORY_MB
    if plan.transport == "flower":
        # A SuperNode, its SuperExec and the warm ClientApp parent live beside the training
        # process; without room for them (and torch's pages) the client thrashes.
        return config.SANDBOX_CLIENT_MEMORY_MB + FLOWER_NODE_MEMORY_MB
    return config.SANDBOX_CLIENT_MEMORY_MB


def role_cpus(config: Config, role: str) -> float:
    """The CPU quota of `role`'s container. The server aggregates and evaluates the model
    while every client waits for it, so it gets the host's cores (SANDBOX_SERVER_CPUS, 0: all
    of them), as `flautim run`'s server does. A quota caps and reserves nothing: while the
    server waits for a round, the clients lose no CPU to it."""
    if role == "server":
        cores = available_cores()
        return float(min(config.SANDBOX_SERVER_CPUS or cores, cores))
    return config.SANDBOX_CPUS_PER_CONTAINER


def cpu_limits(cpus: float) -> dict:
    """A CFS quota per 100 ms period: the same cap as `nano_cpus`, but one that
    `container.update` can raise when a pooled container becomes the server."""
    return {"cpu_period": CPU_PERIOD_US, "cpu_quota": int(cpus * CPU_PERIOD_US)}


def torch_threads(cpus: float) -> str:
    """More threads than the quota get the whole container throttled by the CFS scheduler."""
    return str(max(1, int(cpus)))


def hardened(config: Config, memory_mb: int, cpus: float) -> dict:
    """What every sandbox container gets, pooled or not (see the module's docstring)."""
    uid, gid = sandbox_ids()
    max_file = config.SANDBOX_OUTPUT_LIMIT_MB * 2**20
    return {
        "user": f"{uid}:{gid}",
        # No core dumps (a crash would write the process's memory to disk), a bound on open
        # files, and no single file larger than the run may store.
        "ulimits": [Ulimit(name="core", soft=0, hard=0),
                    Ulimit(name="nofile", soft=config.SANDBOX_OPEN_FILES, hard=config.SANDBOX_OPEN_FILES),
                    Ulimit(name="fsize", soft=max_file, hard=max_file)],
        "working_dir": "/tmp",
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={config.SANDBOX_TMPFS_MB}m,mode=1777"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": f"{memory_mb}m",
        "memswap_limit": f"{memory_mb}m",
        **cpu_limits(cpus),
        "pids_limit": config.SANDBOX_PIDS_LIMIT,
        "ipc_mode": "private",
        "log_config": {"type": "json-file", "config": {"max-size": DOCKER_LOG_MAX_SIZE, "max-file": "1"}},
        "detach": True,
    }


def role_environment(config: Config, plan: RunPlan, role: str) -> dict[str, str]:
    """What a role's process is told, started for the run or taken from the warm pool."""
    return {
        "FLAUTIM_EXPERIMENT_ID": str(plan.experiment_id),
        "FLAUTIM_ROLE": role,
        "OMP_NUM_THREADS": torch_threads(role_cpus(config, role)),
        **(GROUP_ENVIRONMENT if role.startswith("clients-") else {}),
    }


def container_kwargs(
    config: Config,
    plan: RunPlan,
    role: str,
    *,
    image: str | None = None,
    gpus: list[str] | None = None,
) -> dict:
    """The keyword arguments of `docker.containers.create` for `role` of `plan`."""
    environment = role_environment(config, plan, role)
    kwargs: dict = {
        **hardened(config, role_memory_mb(config, plan, role), role_cpus(config, role)),
        "image": image or (config.SANDBOX_GPU_IMAGE if gpus else config.SANDBOX_IMAGE),
        "command": role_command(plan, role),
        "name": container_name(plan, role),
        "hostname": role,
        "labels": run_labels(plan, role),
        "volumes": {
            m.host: {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
            for m in role_mounts(plan, role)
        },
        "environment": environment,
    }
    if role == "prepare":
        # A scratch /work that holds the partition mounts (and anything else prepare writes
        # beside them, e.g. its summary), gone with the container.
        kwargs["tmpfs"] = {**kwargs["tmpfs"], "/work": "rw,nosuid,nodev,size=16m,mode=1777"}
    if role in ("prepare", "inspect"):
        # Reading and partitioning data needs no network at all.
        kwargs["network_mode"] = "none"
    else:
        kwargs["network"] = network_name(plan)
    if gpus:
        from docker.types import DeviceRequest

        kwargs["device_requests"] = [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]
        # Inside the container only the requested devices exist, renumbered from 0.
        environment["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(gpus)))
    else:
        environment["CUDA_VISIBLE_DEVICES"] = ""
    return kwargs


# The folders of a pooled container's slot, and where each is mounted: the same paths a
# run's server and clients use, so a role's command is the same pooled or not.
POOL_MOUNTS = (("bundle", "/bundle", True), ("data", "/data", True), ("out", "/out", False),
               ("ctl", "/ctl", True))


def pool_container_kwargs(config: Config, name: str, slot: str) -> dict:
    """A warm-pool container: hardened like any other, no network, its slot's folders
    mounted, importing and then waiting for a role (`python -m flautim.fl pooled /ctl`).
    It starts with a client's limits; a run raises them for the role it assigns."""
    settings = _pool_settings(config)
    return {
        **settings,
        "name": name,
        "hostname": "sandbox",
        "labels": {LABEL_POOL: slot, LABEL_HOST: socket.gethostname(), LABEL_POOL_SPEC: pool_spec(config)},
        "volumes": {
            f"{slot}/{folder}": {"bind": target, "mode": "ro" if read_only else "rw"}
            for folder, target, read_only in POOL_MOUNTS
        },
        "network_mode": "none",
    }


def _pool_settings(config: Config) -> dict:
    return {
        **hardened(config, config.SANDBOX_CLIENT_MEMORY_MB, config.SANDBOX_CPUS_PER_CONTAINER),
        "image": config.SANDBOX_IMAGE,
        "command": ["pooled", "/ctl"],
        "environment": {"FLAUTIM_ROLE": "pooled", "CUDA_VISIBLE_DEVICES": "",
                        "OMP_NUM_THREADS": torch_threads(config.SANDBOX_CPUS_PER_CONTAINER)},
    }


def pool_spec(config: Config) -> str:
    """A digest of the settings a pool container was made with: one made under other
    settings (the site changed its limits) is replaced, never handed to a run."""
    return hashlib.sha256(json.dumps(_pool_settings(config), sort_keys=True).encode()).hexdigest()[:16]


def host_gpus(config: Config) -> list[str]:
    """The GPU indexes this host offers to the sandbox (Config.SANDBOX_GPUS)."""
    setting = config.SANDBOX_GPUS.strip()
    if setting != "auto":
        return [g.strip() for g in setting.split(",") if g.strip()]
    return list(_nvidia_smi_gpus())


def host_gpu_names(config: Config) -> list[tuple[str, str]]:
    """(index, model name) of each GPU `host_gpus` offers; "GPU <index>" when nvidia-smi
    cannot name it."""
    names = _nvidia_smi_gpus()
    return [(index, names.get(index, f"GPU {index}")) for index in host_gpus(config)]


def _nvidia_smi_gpus() -> dict[str, str]:
    """{index: name} of the GPUs nvidia-smi lists; empty without it or a driver."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return {}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True, env={**os.environ},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    gpus = {}
    for line in out.splitlines():
        index, _, name = line.partition(",")
        if index.strip().isdigit():
            gpus[index.strip()] = name.strip() or f"GPU {index.strip()}"
    return gpus
