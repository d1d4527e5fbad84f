"""Warm ClientApp processes for the Flower deployment transport.

A stock SuperNode runs every message's ClientApp in a fresh `flwr-clientapp` process: about
2 s of CPU for imports (torch, flwr, flautim) plus torch's first-optimizer warm-up, for each
message of each client, every round. Flower starts that process by name, so the runner puts a
tiny `flwr-clientapp` launcher (`write_launcher`) first on the SuperNodes' PATH. The launcher
hands its arguments and its stdout/stderr to one warm parent (`serve`) that imported all of
that once; the parent forks a child that runs Flower's own `flwr-clientapp` entry point with
those arguments and reports the child's exit code back, which the launcher exits with.

Every message still gets its own process and Flower's protocol is untouched: the child pulls
its token's message from the SuperNode exactly as `flwr-clientapp` does. If the warm parent is
not there (not started yet, or gone), the launcher runs the real `flwr-clientapp` instead.

    python -m flautim.fl.transport.warm_clientapp SOCKET --share N

The deployer imports this module for `write_launcher` alone and must stay light, so flwr and
the apps are imported inside `serve` (the parent's warm-up, once) and `run_task`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

import click

from flautim.fl.command_line import run
from flautim.fl.process_setup import limit_torch_threads, warm_client_imports

MAX_REQUEST = 64 * 1024


def write_launcher(bin_dir: Path, socket_path: Path, real_clientapp: Path) -> Path:
    """Write the `flwr-clientapp` launcher into `bin_dir` (stdlib only: it starts in ~20 ms)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / "flwr-clientapp"
    launcher.write_text(
        f"#!{sys.executable} -IS\n"
        '"""flwr-clientapp launcher written by flautim.fl.transport.warm_clientapp."""\n'
        "import json, os, socket, sys\n"
        f"SOCKET, REAL = {str(socket_path)!r}, {str(real_clientapp)!r}\n"
        "fds = [fd for fd in (1, 2) if os.path.exists(f'/proc/self/fd/{fd}')]\n"
        "try:\n"
        "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    s.connect(SOCKET)\n"
        "    socket.send_fds(s, [json.dumps({'argv': sys.argv[1:], 'fds': fds}).encode()], fds)\n"
        "except OSError:\n"
        "    os.execv(REAL, [REAL, *sys.argv[1:]])\n"
        "reply = b''\n"
        "while not reply.endswith(b'\\n'):\n"
        "    chunk = s.recv(64)\n"
        "    if not chunk:\n"
        "        sys.exit(1)\n"
        "    reply += chunk\n"
        "sys.exit(int(reply))\n"
    )
    launcher.chmod(0o755)
    return launcher


def exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def run_task(argv: list[str], share: int, launcher_pid: int) -> int:
    """In the forked child: Flower's `flwr-clientapp` entry point, with the launcher's args."""
    from flwr.supernode.cli.flwr_clientapp import flwr_clientapp

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    limit_torch_threads(share)

    def follow_launcher() -> None:
        # The SuperExec may kill the launcher to stop the task: the task goes with it.
        while True:
            time.sleep(0.5)
            try:
                os.kill(launcher_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    if launcher_pid > 0:
        threading.Thread(target=follow_launcher, daemon=True).start()
    sys.argv = ["flwr-clientapp", *argv]
    try:
        flwr_clientapp()
    except SystemExit as exc:
        return exit_code(exc)
    return 0


def fork_task(conn: socket.socket, server: socket.socket, share: int) -> int | None:
    """Read one request and fork its child; None if the request was unusable."""
    try:
        data, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST, 2)
        request = json.loads(data)
        argv = [str(a) for a in request["argv"]]
        targets = [int(t) for t in request["fds"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    launcher_pid = int.from_bytes(creds[:4], sys.byteorder)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            server.close()
            conn.close()
            for fd, target in zip(fds, targets, strict=False):
                os.dup2(fd, target)
                os.close(fd)
            code = run_task(argv, share, launcher_pid)
        except BaseException:  # noqa: BLE001 - the child must always reach os._exit
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    for fd in fds:
        os.close(fd)
    return pid


def serve(socket_path: Path, share: int) -> None:
    """Import once, then fork one child per launcher connection until killed."""
    warm_client_imports()
    import flwr.supernode.cli.flwr_clientapp  # noqa: F401

    import flautim.fl.transport.flower_apps  # noqa: F401 - the apps the FAB points at

    socket_path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(socket_path))
    socket_path.chmod(0o600)
    server.listen(64)
    waiting: dict[int, socket.socket] = {}
    lock = threading.Lock()

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            with lock:  # fork_task registers the pid under this lock
                conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                conn.close()

    threading.Thread(target=reap, daemon=True).start()
    print(f"warm ClientApp parent ready on {socket_path}", flush=True)
    while True:
        conn, _ = server.accept()
        with lock:
            pid = fork_task(conn, server, share)
            if pid is None:
                conn.close()
            else:
                waiting[pid] = conn


@click.command("python -m flautim.fl.transport.warm_clientapp")
@click.argument("socket", type=click.Path(path_type=Path))
@click.option("--share", type=int, default=1, show_default=True, help="clients training at once (torch threads = cores / share)")
def serve_command(socket: Path, share: int) -> int:
    serve(socket, max(1, share))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(serve_command, argv)


if __name__ == "__main__":
    sys.exit(main())
