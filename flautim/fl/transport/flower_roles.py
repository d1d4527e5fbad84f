"""The Flower deployment split into sandbox roles, one container each.

    python -m flautim.fl flower-server BUNDLE --data D --out O --listen 0.0.0.0:P --clients N
    python -m flautim.fl flower-client BUNDLE --data D --server HOST:P --client-id I

The server container runs the SuperLink, submits the apps to it and prints the ServerApp's
events on stdout as event lines, exactly as the fast transport's server does, so the sandbox
captures both transports the same way. Each client container runs one SuperNode (and the
warm ClientApp parent) against the server's SuperLink.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from flautim.fl.process_group import (
    Console,
    EventConsole,
    ProcessGroup,
    free_port,
    wait_until_prepared,
)
from flautim.fl.run_settings import run_limits
from flautim.fl.transport.flower_deployment import (
    start_superlink,
    start_warm_clientapps,
    submit_and_follow,
    supernode_command,
)


def cmd_flower_server(args: SimpleNamespace) -> int:
    wait_until_prepared(args.after)
    started = time.time()
    console = EventConsole()
    group = ProcessGroup(console)
    scratch = Path(tempfile.mkdtemp(prefix="flautim-flower-"))
    home = scratch / "flwr-home"
    home.mkdir()
    host, port = args.listen.rsplit(":", 1)
    limits = run_limits(Path(args.bundle))
    try:
        start_superlink(group, home, host, int(port))
        return submit_and_follow(
            bundle=Path(args.bundle), server_data=Path(args.data), out=Path(args.out), scratch=scratch,
            clients=int(args.clients or 0), rounds=int(args.rounds or 0), home=home,
            address=f"127.0.0.1:{port}", wait_s=limits.clients_wait_s, console=console,
            deadline=time.monotonic() + limits.time_limit_s, started=started,
        )
    finally:
        group.kill_all()
        group.drain()
        shutil.rmtree(scratch, ignore_errors=True)


def cmd_flower_client(args: SimpleNamespace) -> int:
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
