"""The worker's rules for folders the sandbox can write.

User code runs as the sandbox's user and can write its partition folders, `/work` and `/out`:
anything there may be a symlink to a host file, a FIFO that blocks whoever opens it, or a
folder swapped for a link between two looks. The worker is privileged host code, so it
never writes, mounts or deletes by a path inside such a folder without the care below:

- signals to a container go through a folder only the worker writes (mounted read-only);
- every mount source is checked with `lstat`, component by component, right before the
  container is created, and lives in a folder the sandbox cannot write;
- usage is counted without following links and without a blind spot past some count;
- trees are removed with file descriptors (`shutil.rmtree` never follows a link on Linux),
  after opening up folders the sandbox made unwritable.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC


class UnsafePath(RuntimeError):
    """A path the worker was about to use is not what the worker made (a link, a swap)."""


def check_mount_source(path: Path, trusted_root: Path) -> None:
    """Refuse `path` unless it and every folder between `trusted_root` and it is a real
    folder, not a link. Called right before a container is created with it as a mount."""
    path = Path(path)
    trusted_root = Path(trusted_root)
    try:
        parts = path.relative_to(trusted_root).parts
    except ValueError:
        raise UnsafePath(f"{path} is outside {trusted_root}") from None
    current = trusted_root
    for part in parts:
        current = current / part
        try:
            info = os.lstat(current)
        except OSError as exc:
            raise UnsafePath(f"{current}: {exc.strerror}") from None
        if not stat.S_ISDIR(info.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a folder"
            raise UnsafePath(f"{current} is {kind}")


def create_signal(folder: Path, name: str) -> None:
    """Create the empty file `folder/name` without following or blocking on anything there."""
    folder_fd = os.open(folder, DIR_NOFOLLOW)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
        try:
            os.close(os.open(name, flags, 0o644, dir_fd=folder_fd))
        except FileExistsError:
            if not stat.S_ISREG(os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode):
                raise UnsafePath(f"{folder / name} exists and is not a regular file") from None
    finally:
        os.close(folder_fd)


@dataclass
class Usage:
    bytes: int = 0
    entries: int = 0


def usage(roots: list[Path], stop_bytes: int, stop_entries: int) -> Usage:
    """Bytes and entries (files, folders, links, ...) under `roots`, never following links.

    Counting ends as soon as either figure passes its stop — the caller's limit — so a tree
    of millions of empty files costs no more to judge than the limit itself, and nothing
    past some count goes unseen.
    """
    total = Usage()
    stack = [str(root) for root in roots]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    total.entries += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total.bytes += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
                    if total.bytes > stop_bytes or total.entries > stop_entries:
                        return total
        except OSError:
            continue
    return total


def remove_tree(path: Path) -> None:
    """Delete `path` and everything the sandbox left in it.

    Only once no container of the run is left to race us. A worker that is not root is bound
    by permissions: folders the sandbox made read-only are opened up first, through file
    descriptors opened without following links.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    if os.geteuid() != 0:
        try:
            _open_up(path)
        except OSError:
            pass  # rmtree below reports what is left
    shutil.rmtree(path, ignore_errors=True)


def _open_up(path: Path) -> None:
    """chmod u+rwx on every folder under `path`, never following links.

    Depth first with one open folder per level, so a wide tree costs no descriptors per
    entry. Folders are opened with O_PATH (no read right needed) and changed through
    /proc/self/fd, which names exactly the folder opened, never a link.
    """
    path_flags = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | _CLOEXEC
    stack: list[tuple[int, list[str]]] = []

    def enter(parent_fd: int | None, name: str | Path) -> None:
        try:
            handle = os.open(name, path_flags, dir_fd=parent_fd)
        except OSError:
            return  # a file or a link: its folder's mode is all rmtree needs
        try:
            os.chmod(f"/proc/self/fd/{handle}", 0o700)
            readable = os.open(".", DIR_NOFOLLOW, dir_fd=handle)
        except OSError:
            return
        finally:
            os.close(handle)
        try:
            names = os.listdir(readable)
        except OSError:
            os.close(readable)
            return
        stack.append((readable, names))

    enter(None, path)
    while stack:
        folder, names = stack[-1]
        if names:
            enter(folder, names.pop())
        else:
            os.close(folder)
            stack.pop()
