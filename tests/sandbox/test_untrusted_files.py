"""The worker's handling of folders the sandbox can write, attacked with what user code can
plant there: symlinks to host files, FIFOs, swapped folders, floods of entries, folders it
made unwritable. No Docker needed: these are the host-side halves of the trust boundary."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from flautim.config import Config
from flautim.sandbox import untrusted_files
from flautim.sandbox.plan import RunControl, RunPlan
from flautim.sandbox.supervision import LimitChecks, prepare_dirs
from flautim.sandbox.untrusted_files import (
    UnsafePath,
    check_mount_source,
    create_signal,
    remove_tree,
    usage,
)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "host" / "precious.sqlite3"
    path.parent.mkdir()
    path.write_bytes(b"another tenant's data" * 100)
    return path


def test_a_signal_never_follows_a_planted_link(tmp_path, victim):
    folder = tmp_path / "ctl"
    folder.mkdir()
    before = _digest(victim)
    (folder / "prepared").symlink_to(victim)
    with pytest.raises(UnsafePath):
        create_signal(folder, "prepared")
    assert _digest(victim) == before
    # Today's marker write (Path.write_text) truncated the link's target:
    (folder / "other").symlink_to(victim)
    assert victim.stat().st_size > 0


def test_a_signal_never_blocks_on_a_planted_fifo(tmp_path):
    folder = tmp_path / "ctl"
    folder.mkdir()
    os.mkfifo(folder / "prepared")
    done = threading.Event()

    def signal():
        try:
            create_signal(folder, "prepared")
        except UnsafePath:
            pass
        done.set()

    threading.Thread(target=signal, daemon=True).start()
    assert done.wait(10), "create_signal blocked on a FIFO"


def test_a_signal_is_created_where_nothing_was(tmp_path):
    create_signal(tmp_path, "prepared")
    assert (tmp_path / "prepared").is_file()
    create_signal(tmp_path, "prepared")  # twice is fine


def test_a_mount_source_swapped_for_a_link_is_refused(tmp_path):
    root = tmp_path / "data"
    partition = root / "attempt-1" / "work" / "client-3"
    partition.mkdir(parents=True)
    check_mount_source(partition, root)
    partition.rmdir()
    partition.symlink_to("/etc", target_is_directory=True)
    with pytest.raises(UnsafePath, match="symbolic link"):
        check_mount_source(partition, root)
    # A link anywhere above it counts as much.
    partition.unlink()
    (root / "elsewhere" / "client-3").mkdir(parents=True)
    (root / "attempt-1" / "work").rename(root / "attempt-1" / "work-old")
    (root / "attempt-1" / "work").symlink_to(root / "elsewhere")
    with pytest.raises(UnsafePath):
        check_mount_source(partition, root)
    with pytest.raises(UnsafePath, match="outside"):
        check_mount_source(Path("/etc"), root)


def test_a_run_s_folders_put_every_mount_source_in_a_folder_only_the_worker_writes(tmp_path):
    base = tmp_path / "attempt-1"
    plan = RunPlan(experiment_id=1, attempt=1, code_dir=base / "code", data_dir=tmp_path / "ds",
                   work_dir=base / "work", out_dir=base / "output", clients=2)
    prepare_dirs(plan)
    for folder in (plan.work_dir, plan.control_dir, base):
        info = folder.stat()
        assert info.st_uid == os.geteuid() and not info.st_mode & 0o022, folder
    for folder in (*plan.partition_dirs, plan.out_dir):
        assert (folder.stat().st_mode & 0o777) == 0o700, folder  # never 0777
        assert folder.parent in (plan.work_dir, base)


def test_usage_has_no_blind_spot_after_many_entries(tmp_path):
    for i in range(1_200):
        (tmp_path / f"empty-{i}").touch()
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "big").write_bytes(b"0" * 3_000_000)
    seen = usage([tmp_path], stop_bytes=10**12, stop_entries=10**9)
    assert seen.entries == 1_202 and seen.bytes == 3_000_000
    # With a file-count limit under the flood, the count itself is the verdict.
    assert usage([tmp_path], stop_bytes=10**12, stop_entries=1_000).entries > 1_000


class _Run(LimitChecks):
    def __init__(self, config, plan):
        self.config, self.plan, self.control = config, plan, RunControl(60)
        self.lines, self.killed = [], False
        self.sink = self
        self._last_beat = self._last_disk = 0.0

    def line(self, source, stream, text):
        self.lines.append(text)

    def kill(self, roles=None):
        self.killed = True


def test_a_flood_of_empty_files_stops_the_run(tmp_path):
    base = tmp_path / "attempt-1"
    plan = RunPlan(experiment_id=1, attempt=1, code_dir=base / "code", data_dir=tmp_path / "ds",
                   work_dir=base / "work", out_dir=base / "output", clients=1)
    prepare_dirs(plan)
    config = Config.from_env(environ={}, ENV="test", SANDBOX_OUTPUT_MAX_FILES=500, SANDBOX_OUTPUT_LIMIT_MB=1)
    run = _Run(config, plan)
    assert run.check_limits() is None
    for i in range(501):
        (plan.out_dir / f"f{i}").touch()
    run._last_disk = 0.0  # the disk is looked at every 2 s
    outcome = run.check_limits()
    assert outcome is not None and outcome.status == "failed" and run.killed
    assert "more than 500 files" in outcome.reason


def test_removal_never_follows_a_planted_link(tmp_path, victim):
    tree = tmp_path / "work"
    (tree / "client-0" / "deep").mkdir(parents=True)
    (tree / "client-0" / "escape").symlink_to(victim.parent, target_is_directory=True)
    (tree / "client-0" / "deep" / "file").symlink_to(victim)
    os.mkfifo(tree / "client-0" / "fifo")
    os.chmod(tree / "client-0" / "deep", 0)
    remove_tree(tree)
    assert not tree.exists()
    assert victim.read_bytes().startswith(b"another tenant")


REMOVE_AS_NOBODY = """
import importlib.util, os, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("untrusted_files", sys.argv[2])
module = importlib.util.module_from_spec(spec)
sys.modules["untrusted_files"] = module
spec.loader.exec_module(module)
remove_tree = module.remove_tree
root = Path(sys.argv[1])
(root / "a" / "b").mkdir(parents=True)
(root / "a" / "b" / "f").write_text("x")
(root / "a" / "link").symlink_to(sys.argv[3])
os.chmod(root / "a" / "b", 0o500)   # what user code does to keep its files
os.chmod(root / "a", 0)
remove_tree(root)
print("left:", root.exists())
"""


PYTHON = shutil.which("python3", path="/usr/bin:/usr/local/bin") or sys.executable


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to another user (root)")
def test_a_worker_that_is_not_root_removes_what_the_sandbox_locked(victim):
    # pytest's tmp_path sits in a folder only root may enter.
    shared = Path(tempfile.mkdtemp(prefix="flautim-nonroot-"))
    os.chmod(shared, 0o755)
    os.chown(shared, 65534, 65534)
    request_cleanup = shared
    root = shared / "run"
    # The module alone, by a Python the other user may run (the venv's may sit under /root).
    module = shared / "untrusted_files.py"
    shutil.copyfile(untrusted_files.__file__, module)
    result = subprocess.run(
        [PYTHON, "-c", REMOVE_AS_NOBODY, str(root), str(module), str(victim.parent)],
        user=65534, group=65534, capture_output=True, text=True, timeout=60,
    )
    shutil.rmtree(request_cleanup)
    assert result.returncode == 0, result.stderr
    assert "left: False" in result.stdout
    assert victim.exists()
