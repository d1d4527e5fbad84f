"""How a claimed warm-pool slot's folders become a run's (no Docker needed)."""

import json
import os

import pytest

from flautim.config import Config
from flautim.sandbox.plan import RunPlan
from flautim.sandbox.supervision import prepare_dirs
from flautim.sandbox.warm_pool import Pooled, WarmPool


def _slot(root, name):
    slot = root / name
    for folder in ("bundle", "data", "out", "ctl"):
        (slot / folder).mkdir(parents=True)
    (slot / "claimed").mkdir()
    return slot


@pytest.fixture
def plan(tmp_path):
    base = tmp_path / "attempt"
    code = base / "code"
    code.mkdir(parents=True)
    (code / "api.py").write_text("x = 1\n")
    (code / "dataset.py").write_text("y = 2\n")
    (code / "link.py").symlink_to("/etc/passwd")
    plan = RunPlan(experiment_id=3, attempt=1, code_dir=code, data_dir=tmp_path / "ds", work_dir=base / "work",
                   out_dir=base / "output", clients=2)
    prepare_dirs(plan)
    return plan


def test_the_slot_folders_become_the_run_partition_and_output(tmp_path, plan):
    pool = WarmPool(
        Config.from_env(environ={}, ENV="test", SANDBOX_BACKEND="docker", DATA_DIR=str(tmp_path / "d")), client=None
    )
    server = Pooled(None, _slot(tmp_path / "pool", "s"))
    client = Pooled(None, _slot(tmp_path / "pool", "c"))
    server_data = os.stat(server.slot / "data").st_ino
    client_data = os.stat(client.slot / "data").st_ino
    server_out = os.stat(server.slot / "out").st_ino
    pool.bind_folders(server, plan, "server")
    pool.bind_folders(client, plan, "client-1")
    # The very folders the pooled containers mount are now where prepare writes and the
    # ingest reads.
    assert os.stat(plan.server_data_dir).st_ino == server_data
    assert os.stat(plan.client_dir(1)).st_ino == client_data
    assert os.stat(plan.out_dir).st_ino == server_out
    # A client's /out is read-only for the sandbox user; the code is copied, links are not.
    assert (os.stat(client.slot / "out").st_mode & 0o777) == 0o555
    assert sorted(p.name for p in (client.slot / "bundle").iterdir()) == ["api.py", "data", "dataset.py"]


def test_a_role_is_written_whole(tmp_path):
    pooled = Pooled(None, _slot(tmp_path, "s"))
    WarmPool.assign(pooled, ["client", "/bundle", "--client-id", "1"], {"FLAUTIM_ROLE": "client-1"})
    assert json.loads((pooled.slot / "ctl" / "role.json").read_text()) == {
        "argv": ["client", "/bundle", "--client-id", "1"], "env": {"FLAUTIM_ROLE": "client-1"}}
    assert not (pooled.slot / "ctl" / "role.json.tmp").exists()


def test_a_pooled_process_becomes_only_a_server_or_client_role(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "role.json").write_text(json.dumps({"argv": ["prepare", "/bundle", "/work"]}))
    proc = subprocess.run([sys.executable, "-m", "flautim.fl", "pooled", str(tmp_path)], capture_output=True,
                          text=True, timeout=120, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 2
    assert "flautim: pooled process ready" in proc.stdout
    assert "cannot become ['prepare']" in proc.stderr


def test_a_group_slot_becomes_the_group_folder_with_its_clients_folders_inside(tmp_path):
    base = tmp_path / "attempt"
    (base / "code").mkdir(parents=True)
    plan = RunPlan(experiment_id=3, attempt=1, code_dir=base / "code", data_dir=tmp_path / "ds",
                   work_dir=base / "work", out_dir=base / "output", clients=6, client_containers=2)
    prepare_dirs(plan)
    assert plan.client_roles == ["clients-0-2", "clients-3-5"]
    made = {c: os.stat(plan.client_dir(c)) for c in range(3)}
    pool = WarmPool(
        Config.from_env(environ={}, ENV="test", SANDBOX_BACKEND="docker", DATA_DIR=str(tmp_path / "d")), client=None
    )
    group = Pooled(None, _slot(tmp_path / "pool", "g"))
    group_data = os.stat(group.slot / "data").st_ino
    pool.bind_folders(group, plan, "clients-0-2")
    # The folder the pooled container mounts at /data is the group's, its clients' folders
    # (the ones prepare_dirs made, with their owner and mode) inside it, where prepare's
    # mounts write.
    assert os.stat(plan.group_dir("clients-0-2")).st_ino == group_data
    assert sorted(p.name for p in plan.group_dir("clients-0-2").iterdir()) == ["client-0", "client-1", "client-2"]
    for client, before in made.items():
        after = os.stat(plan.client_dir(client))
        assert (after.st_ino, after.st_uid, after.st_mode) == (before.st_ino, before.st_uid, before.st_mode)
    # The group's folder is the worker's, as prepare_dirs makes it: the sandbox cannot swap
    # a client's folder in it for a link.
    info = os.stat(plan.group_dir("clients-0-2"))
    assert info.st_uid == os.geteuid() and (info.st_mode & 0o777) == 0o755
    assert (os.stat(plan.client_dir(0)).st_mode & 0o777) == 0o700


def test_grouping_local_partitions_moves_planted_links_and_fifos_without_following_them(tmp_path):
    from flautim.sandbox.local_backend import group_partitions

    base = tmp_path / "attempt"
    plan = RunPlan(experiment_id=3, attempt=1, code_dir=base / "code", data_dir=tmp_path / "ds",
                   work_dir=base / "work", out_dir=base / "output", clients=4, client_containers=2)
    plan.work_dir.mkdir(parents=True)
    outside = tmp_path / "host-file"
    outside.write_text("host data\n")
    (plan.work_dir / "client-0").mkdir()
    os.mkfifo(plan.work_dir / "client-0" / "fifo")
    (plan.work_dir / "client-1").symlink_to(outside)  # prepare (user code) planted a link
    for client in (2, 3):
        (plan.work_dir / f"client-{client}").mkdir()
    group_partitions(plan)
    # The link itself moved, unfollowed: the host file is as it was; the FIFO was not opened.
    assert plan.client_dir(1).is_symlink() and outside.read_text() == "host data\n"
    assert (plan.client_dir(0) / "fifo").exists()
    assert sorted(p.name for p in plan.work_dir.iterdir()) == ["clients-0-1", "clients-2-3"]
