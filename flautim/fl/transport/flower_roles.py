"""The Flower deployment transport split into sandbox roles, one container each.

    python -m flautim.fl flower-server BUNDLE --data D --out O --listen 0.0.0.0:P --clients N
    python -m flautim.fl flower-client BUNDLE --data D --server HOST:P --client-id I

The server container runs the SuperLink, submits the generic apps to it and prints the
ServerApp's events on stdout as event lines, exactly as the fast transport's server does, so
the sandbox captures both transports the same way. Each client container runs one SuperNode
(and the warm ClientApp parent) against the server's SuperLink.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from flautim.fl.events import event_line
from flautim.fl.runner import Console, ProcessGroup, free_port, read_limits


class EventConsole(Console):
    """Re-emits the run's events as event lines on stdout; logs go to stderr."""

    def __init__(self) -> None:
        super().__init__(as_json=True)

    def event(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)
            self.out.write(event_line(event) + "\n")
            self.out.flush()


def cmd_flower_server(args: argparse.Namespace) -> int:
    from flautim.fl.transport.flower import start_superlink, submit_and_follow
    from flautim.fl.transport.processes import wait_until_prepared

    wait_until_prepared(args.after)
    started = time.time()
    console = EventConsole()
    group = ProcessGroup(console)
    scratch = Path(tempfile.mkdtemp(prefix="flautim-flower-"))
    home = scratch / "flwr-home"
    home.mkdir()
    host, port = args.listen.rsplit(":", 1)
    limit_s, wait_s = read_limits(Path(args.bundle))
    try:
        start_superlink(group, home, host, int(port))
        return submit_and_follow(
            bundle=Path(args.bundle), server_data=Path(args.data), out=Path(args.out), scratch=scratch,
            clients=int(args.clients or 0), rounds=int(args.rounds or 0), home=home,
            address=f"127.0.0.1:{port}", wait_s=wait_s, console=console,
            deadline=time.monotonic() + limit_s, started=started,
        )
    finally:
        group.kill_all()
        group.drain()
        shutil.rmtree(scratch, ignore_errors=True)


def cmd_flower_client(args: argparse.Namespace) -> int:
    from flautim.fl.transport.flower import start_warm_clientapps, supernode_command
    from flautim.fl.transport.processes import wait_until_prepared

    wait_until_prepared(args.after)
    group = ProcessGroup(Console(as_json=False))
    scratch = Path(tempfile.mkdtemp(prefix="flautim-flower-"))
    home = scratch / "flwr-home"
    home.mkdir()
    warm_dir, env = start_warm_clientapps(group, home, 1)
    try:
        supernode = group.start(
            "supernode",
            supernode_command(args.server, args.client_id, Path(args.data), Path(args.bundle), free_port()),
            env=env,
        )
        return supernode.wait()  # until the sandbox stops it once the server has finished
    finally:
        group.kill_all()
        group.drain()
        if warm_dir is not None:
            shutil.rmtree(warm_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)

