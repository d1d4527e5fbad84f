"""Virtual clients on the platform: a run's N clients in K client containers, K from the
host's cores and memory, checked on the plan and the pure container settings."""

from collections import Counter
from pathlib import Path

import pytest

from flautim import quotas
from flautim.config import Config
from flautim.sandbox import admission
from flautim.sandbox.admission import plan_client_containers, run_memory_mb
from flautim.sandbox.container_spec import container_kwargs
from flautim.sandbox.plan import RunPlan, role_clients


@pytest.fixture
def config():
    # 2 cores (below) and 40 GB for runs: K = 2 x 2 = 4 by cores, 36 by memory.
    return Config.from_env(environ={}, ENV="test", SANDBOX_BACKEND="docker", SANDBOX_CLIENT_MEMORY_MB=1024,
                           SANDBOX_SERVER_MEMORY_MB=2048, SANDBOX_HOST_MEMORY_MB=42_000,
                           SANDBOX_HOST_RESERVE_MB=2000)


@pytest.fixture(autouse=True)
def two_cores(monkeypatch):
    monkeypatch.setattr(admission, "available_cores", lambda: 2)
    monkeypatch.delenv("FLAUTIM_CLIENT_PROCESSES", raising=False)


def _plan(tmp_path, clients: int, transport: str = "fast") -> RunPlan:
    base = tmp_path / "attempt-1"
    return RunPlan(experiment_id=7, attempt=1, code_dir=base / "code", data_dir=tmp_path / "ds",
                   work_dir=base / "work", out_dir=base / "output", clients=clients, transport=transport)


def _mounts(kwargs) -> dict[str, tuple[Path, str]]:
    return {v["bind"]: (Path(host), v["mode"]) for host, v in kwargs["volumes"].items()}


def test_a_thousand_clients_run_in_k_plus_two_containers_each_partition_mounted_once_read_only(config, tmp_path):
    plan = plan_client_containers(config, _plan(tmp_path, 1000))
    roles = plan.client_roles
    assert len(roles) == 4  # 2 per core, not one per client
    assert len(["prepare", "server", *roles]) == 4 + 2
    assert roles == ["clients-0-249", "clients-250-499", "clients-500-749", "clients-750-999"]
    mounted = Counter()
    for role in roles:
        kw = container_kwargs(config, plan, role)
        hosted = role_clients(role)
        assert kw["command"][:1] == ["clients"]
        assert kw["command"][kw["command"].index("--ids") + 1] == f"{hosted[0]}-{hosted[-1]}"
        assert kw["command"][kw["command"].index("--data-root") + 1] == "/data"
        # One client process per container: its CPU quota and memory limit are one's.
        assert kw["environment"]["FLAUTIM_CLIENT_PROCESSES"] == "1"
        assert kw["read_only"] is True and kw["cap_drop"] == ["ALL"] and kw["mem_limit"] == "1024m"
        # One mount, read-only: the group's folder, holding its clients' partition folders.
        group, mode = _mounts(kw)["/data"]
        assert mode == "ro" and group == plan.group_dir(role) and group.parent == plan.work_dir
        for client in hosted:
            assert plan.client_dir(client).parent == group
            mounted[plan.client_dir(client).name] += 1
    assert mounted == Counter({f"client-{i}": 1 for i in range(1000)})
    # The host reserves K client containers, not N.
    assert run_memory_mb(config, plan) == 2 * 2048 + 4 * 1024


def test_k_follows_the_memory_the_host_gives_runs(config, tmp_path):
    small = Config.from_env(environ={}, **{**config.__dict__, "SANDBOX_HOST_MEMORY_MB": 9_200})
    plan = plan_client_containers(small, _plan(tmp_path, 1000))
    # 9,200 - 2,000 reserve - 4,096 for prepare and the server leaves room for 3 clients.
    assert len(plan.client_roles) == 3
    assert run_memory_mb(small, plan) <= admission.host_capacity_mb(small)


def test_with_no_more_clients_than_k_each_client_keeps_its_own_container(config, tmp_path):
    plan = plan_client_containers(config, _plan(tmp_path, 3))
    assert plan.client_roles == ["client-0", "client-1", "client-2"]
    kw = container_kwargs(config, plan, "client-1")
    assert kw["command"][0] == "client" and "FLAUTIM_CLIENT_PROCESSES" not in kw["environment"]
    assert _mounts(kw)["/data"] == (plan.work_dir / "client-1", "ro")


def test_flower_keeps_a_supernode_container_per_client(config, tmp_path):
    plan = plan_client_containers(config, _plan(tmp_path, 40, transport="flower"))
    assert plan.client_roles == [f"client-{i}" for i in range(40)]


def test_the_operator_can_fix_k(config, tmp_path):
    fixed = Config.from_env(environ={}, **{**config.__dict__, "SANDBOX_CLIENT_CONTAINERS": 3})
    plan = plan_client_containers(fixed, _plan(tmp_path, 12))
    assert plan.client_roles == ["clients-0-3", "clients-4-7", "clients-8-11"]


def test_a_group_mounts_nothing_the_sandbox_can_write(config, tmp_path):
    plan = plan_client_containers(config, _plan(tmp_path, 100))
    writable = [p for p, mode in _mounts(container_kwargs(config, plan, "prepare")).values() if mode == "rw"]
    writable += [plan.out_dir]
    for role in plan.client_roles:
        for source, mode in _mounts(container_kwargs(config, plan, role)).values():
            assert mode == "ro"
            assert not any(w in source.parents for w in writable), (role, source)


def test_quotas_charge_the_containers_the_worker_planned():
    assert quotas.run_containers({"num_clients": 1000}, {"containers": 17}) == 17
    assert quotas.run_containers({"num_clients": 1000}, {}) == 1001  # never planned: the most
    # The runtime's own rule for num_clients: up to 10,000.
    assert quotas.run_clients({"num_clients": 10_000}) == 10_000
    assert quotas.run_clients({"num_clients": 10_001}) == quotas.DEFAULT_CLIENTS
