"""The hardened container settings, checked on the pure function that builds them."""

from pathlib import Path

import pytest

from flautim.config import Config
from flautim.fl.virtual_clients import available_cores
from flautim.sandbox.container_spec import (
    LABEL_ATTEMPT,
    LABEL_EXPERIMENT,
    LABEL_POOL,
    LABEL_ROLE,
    container_kwargs,
    gpu_assignment,
    network_name,
    pool_container_kwargs,
    role_command,
    role_cpus,
)
from flautim.sandbox.plan import RunPlan


@pytest.fixture
def config():
    return Config.from_env(environ={}, ENV="test", SANDBOX_BACKEND="docker", SANDBOX_CLIENT_MEMORY_MB=768,
                           SANDBOX_SERVER_MEMORY_MB=1536, SANDBOX_CPUS_PER_CONTAINER=1.5,
                           SANDBOX_PIDS_LIMIT=99, SANDBOX_TMPFS_MB=64)


@pytest.fixture
def plan(tmp_path):
    base = tmp_path / "attempt-2"
    return RunPlan(experiment_id=41, attempt=2, code_dir=base / "code", data_dir=tmp_path / "ds" / "data",
                   work_dir=base / "work", out_dir=base / "output", clients=3)


ROLES = ["prepare", "server", "client-0", "client-2", "inspect"]


@pytest.mark.parametrize("role", ROLES)
def test_every_container_is_hardened(config, plan, role):
    kw = container_kwargs(config, plan, role)
    assert kw["user"] == "10001:10001"
    assert kw["read_only"] is True
    assert kw["tmpfs"]["/tmp"] == "rw,nosuid,nodev,size=64m,mode=1777"
    assert set(kw["tmpfs"]) == ({"/tmp", "/work"} if role == "prepare" else {"/tmp"})
    limits = {u["Name"]: (u["Soft"], u["Hard"]) for u in kw["ulimits"]}
    assert limits["core"] == (0, 0)
    assert limits["nofile"] == (config.SANDBOX_OPEN_FILES,) * 2
    assert limits["fsize"] == (config.SANDBOX_OUTPUT_LIMIT_MB * 2**20,) * 2
    assert kw["cap_drop"] == ["ALL"]
    assert kw["security_opt"] == ["no-new-privileges"]
    assert kw["mem_limit"] == kw["memswap_limit"]
    cpus = available_cores() if role == "server" else 1.5
    assert kw["cpu_period"] == 100_000 and kw["cpu_quota"] == int(cpus * 100_000)
    assert kw["environment"]["OMP_NUM_THREADS"] == str(int(cpus))
    assert kw["pids_limit"] == 99
    if role in ("prepare", "inspect"):
        assert kw["network_mode"] == "none" and "network" not in kw
    else:
        assert kw["network"] == network_name(plan) == "flautim-e41-a2"
        assert "network_mode" not in kw
    assert kw["labels"][LABEL_EXPERIMENT] == "41"
    assert kw["labels"][LABEL_ATTEMPT] == "2"
    assert kw["labels"][LABEL_ROLE] == role
    assert kw["log_config"]["config"]["max-size"]
    assert "privileged" not in kw and "cap_add" not in kw
    assert kw["environment"]["CUDA_VISIBLE_DEVICES"] == ""
    # Nothing of the platform's own settings reaches user code.
    assert not any(k.startswith("FLAUTIM_") and k not in ("FLAUTIM_EXPERIMENT_ID", "FLAUTIM_ROLE")
                   for k in kw["environment"])


def test_memory_limits_by_role(config, plan):
    assert container_kwargs(config, plan, "client-1")["mem_limit"] == "768m"
    assert container_kwargs(config, plan, "server")["mem_limit"] == "1536m"


def _mounts(kw):
    return {v["bind"]: (Path(host), v["mode"]) for host, v in kw["volumes"].items()}


def test_only_the_server_gets_the_writable_output(config, plan):
    server = _mounts(container_kwargs(config, plan, "server"))
    assert server["/out"] == (plan.out_dir, "rw")
    assert server["/data"] == (plan.server_data_dir, "ro")
    assert server["/bundle"] == (plan.code_dir, "ro")
    for role in ("client-0", "client-1", "client-2"):
        mounts = _mounts(container_kwargs(config, plan, role))
        assert all(mode == "ro" for _, mode in mounts.values())
        assert plan.out_dir not in [p for p, _ in mounts.values()]


def test_a_client_sees_only_its_own_partition(config, plan):
    mounts = _mounts(container_kwargs(config, plan, "client-2"))
    assert mounts["/data"] == (plan.work_dir / "client-2", "ro")
    assert mounts["/ctl"] == (plan.control_dir, "ro")
    assert set(mounts) == {"/bundle", "/data", "/ctl"}
    kw = container_kwargs(config, plan, "client-2")
    command = kw["command"]
    assert command[command.index("--client-id") + 1] == "2"
    assert "flautim-e41-a2-server:9092" in command
    # It starts while `prepare` runs and waits for the worker's marker in the read-only
    # control folder, which no user code can write.
    assert command[command.index("--after") + 1] == "/ctl/prepared"


def test_prepare_reads_the_dataset_and_writes_only_the_partition_folders(config, plan):
    mounts = _mounts(container_kwargs(config, plan, "prepare"))
    assert mounts["/bundle/data"] == (plan.data_dir, "ro")
    writable = {t: p for t, (p, mode) in mounts.items() if mode == "rw"}
    # Each partition folder is its own mount: never the folder holding them, so prepare can
    # fill them but cannot swap one for a link before a client mounts it.
    assert writable == {f"/work/{p.name}": p for p in plan.partition_dirs}
    assert plan.work_dir not in writable.values()
    assert "/ctl" not in mounts


@pytest.mark.parametrize("role", ROLES)
def test_no_mount_source_lies_in_a_folder_the_sandbox_can_write(config, plan, role):
    writable = [p for p, mode in _mounts(container_kwargs(config, plan, "prepare")).values() if mode == "rw"]
    writable += [plan.out_dir]
    for source, _mode in _mounts(container_kwargs(config, plan, role)).values():
        assert not any(w in source.parents for w in writable), (role, source)


def test_unknown_role_is_refused(config, plan):
    with pytest.raises(ValueError, match="unknown sandbox role"):
        container_kwargs(config, plan, "superuser")


def test_gpu_policy_share_and_split():
    assert gpu_assignment(3, ["0", "1"], "share") == [["0", "1"]] * 3
    assert gpu_assignment(3, ["0", "1"], "split") == [["0"], ["1"], ["0"]]
    assert gpu_assignment(2, [], "split") == [[], []]


def test_split_deals_every_gpu_to_k_client_containers_round_robin():
    # K >= GPUs: one GPU each, the GPUs in turn; K < GPUs: disjoint sets, none left idle.
    assert gpu_assignment(5, ["0", "1"], "split") == [["0"], ["1"], ["0"], ["1"], ["0"]]
    assert gpu_assignment(2, ["0", "1", "2", "3", "4"], "split") == [["0", "2", "4"], ["1", "3"]]
    assert gpu_assignment(1, ["0", "1"], "split") == [["0", "1"]]


def test_each_client_container_sees_its_split_gpus_renumbered_from_zero(config, plan):
    split = gpu_assignment(2, ["4", "5", "6"], "split")
    seen = [container_kwargs(config, plan, f"client-{i}", gpus=g) for i, g in enumerate(split)]
    assert [kw["device_requests"][0]["DeviceIDs"] for kw in seen] == [["4", "6"], ["5"]]
    assert [kw["environment"]["CUDA_VISIBLE_DEVICES"] for kw in seen] == ["0,1", "0"]


def test_gpu_clients_get_device_requests_and_visible_devices(config, plan):
    kw = container_kwargs(config, plan, "client-1", gpus=["3"])
    request = kw["device_requests"][0]
    assert request["DeviceIDs"] == ["3"]
    assert request["Capabilities"] == [["gpu"]]
    assert kw["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert kw["image"] == config.SANDBOX_GPU_IMAGE
    shared = container_kwargs(config, plan, "client-1", gpus=["0", "1"])
    assert shared["environment"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert "device_requests" not in container_kwargs(config, plan, "client-1")


def test_a_warm_pool_container_is_hardened_offline_and_mounts_its_slot_where_roles_expect(config, plan):
    kw = pool_container_kwargs(config, "flautim-pool-ab12", "/srv/pool/h/ab12")
    cold = container_kwargs(config, plan, "client-0")
    for key in ("user", "read_only", "tmpfs", "cap_drop", "security_opt", "mem_limit", "memswap_limit",
                "cpu_period", "cpu_quota", "pids_limit", "ipc_mode", "log_config"):
        assert kw[key] == cold[key], key
    assert kw["network_mode"] == "none" and "network" not in kw
    assert kw["labels"][LABEL_POOL] == "/srv/pool/h/ab12"
    assert LABEL_EXPERIMENT not in kw["labels"]
    assert kw["command"] == ["pooled", "/ctl"]
    mounts = {v["bind"]: (host, v["mode"]) for host, v in kw["volumes"].items()}
    assert mounts == {
        "/bundle": ("/srv/pool/h/ab12/bundle", "ro"), "/data": ("/srv/pool/h/ab12/data", "ro"),
        "/out": ("/srv/pool/h/ab12/out", "rw"), "/ctl": ("/srv/pool/h/ab12/ctl", "ro"),
    }
    # The roles' commands only name paths the pooled container has.
    for role in ("server", "client-0"):
        paths = [a for a in role_command(plan, role) if a.startswith("/")]
        assert all(p.split("/")[1] in ("bundle", "data", "out", "ctl") for p in paths), paths
    assert kw["environment"]["CUDA_VISIBLE_DEVICES"] == ""


def test_pool_containers_made_under_other_settings_are_told_apart(config):
    import dataclasses

    from flautim.sandbox.container_spec import LABEL_POOL_SPEC, pool_spec

    assert pool_spec(config) == pool_spec(dataclasses.replace(config))
    for change in ({"SANDBOX_PIDS_LIMIT": 100}, {"SANDBOX_CLIENT_MEMORY_MB": 1024}, {"SANDBOX_IMAGE": "other:1"}):
        assert pool_spec(dataclasses.replace(config, **change)) != pool_spec(config), change
    assert pool_container_kwargs(config, "n", "/s")["labels"][LABEL_POOL_SPEC] == pool_spec(config)


def test_the_server_may_use_the_host_cores_and_a_site_can_cap_it(config, plan):
    """The server aggregates and evaluates while every client waits, as `flautim run`'s does
    on all cores; its quota is a cap, so the clients' quota is unchanged."""
    assert role_cpus(config, "server") == available_cores()
    assert role_cpus(config, "client-0") == role_cpus(config, "clients-0-9") == role_cpus(config, "prepare") == 1.5
    capped = Config.from_env(environ={}, ENV="test", SANDBOX_BACKEND="docker", SANDBOX_SERVER_CPUS=1)
    assert role_cpus(capped, "server") == 1.0
    assert container_kwargs(capped, plan, "server")["cpu_quota"] == 100_000
    too_many = Config.from_env(environ={}, ENV="test", SANDBOX_BACKEND="docker", SANDBOX_SERVER_CPUS=10_000)
    assert role_cpus(too_many, "server") == available_cores()  # Docker refuses more than the host has
