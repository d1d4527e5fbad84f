"""Deploying a run on Flower: a stock SuperLink and SuperNodes running the apps of
`flower_apps.py`, the FAB that points at them, and following the run to its end.

This is also the path for clients that join from outside: anything that can run
`flower-supernode --superlink HOST:PORT --node-config 'client-id=I data-dir="..." bundle="..."'`
with flautim installed can take part.

Nothing here imports flwr or torch: the deployer only starts Flower's executables and its CLI
(`flwr run`, `flwr ls`), so `flautim run` and the Flower server role stay light.

Offline flags: `--disable-runtime-dependency-installation` on the SuperLink (else every run
tries `uv sync` against the package index and fails), a writable FLWR_HOME, no telemetry, no
update check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from flautim.fl.events import InvalidEvent, parse_line
from flautim.fl.process_group import Console, ProcessGroup, fail
from flautim.fl.transport.warm_clientapp import write_launcher

OFFLINE_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
FEDERATION = "flautim"
# Speed-ups that stay inside Flower's public surface (FLAUTIM_FLOWER_STOCK=1 turns them off,
# which is how the benchmark measures a stock deployment of the same apps):
# - the ServerApp pulls replies every REPLY_POLL_S through the Grid API instead of sleeping
#   3 s between pulls (flwr/superlink/grid/http_grid.py); the FAB's config carries it;
# - SuperExec polls for new tasks every SUPEREXEC_POLL_S instead of 1 s
#   (FLWR_SUPEREXEC_TASK_POLL_INTERVAL; much shorter costs a core idle);
# - each message's `flwr-clientapp` process is forked from one warm parent instead of
#   starting cold (warm_clientapp.py).
REPLY_POLL_S = 0.1
SUPEREXEC_POLL_S = "0.2"
# How often the deployer asks Flower whether the run ended (a ServerApp that dies cannot
# write `run_finished`).
STATUS_CHECK_S = 15.0


def stock_mode() -> bool:
    return os.environ.get("FLAUTIM_FLOWER_STOCK", "") == "1"


# -- the FAB ----------------------------------------------------------------------------------
def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_fab_dir(app_dir: Path, config: dict[str, Any]) -> Path:
    """A Flower app folder whose components are the apps of `flower_apps.py`."""
    package = app_dir / "flautim_fab"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""Flautim generic apps (generated)."""\n')
    # `flwr run` checks the components by reading the module for an `app = ...` assignment.
    (package / "server_app.py").write_text("import flautim.fl.transport.flower_apps as flautim_apps\n\napp = flautim_apps.server_app\n")
    (package / "client_app.py").write_text("import flautim.fl.transport.flower_apps as flautim_apps\n\napp = flautim_apps.client_app\n")
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        'name = "flautim-run"',
        'version = "1.0.0"',
        'description = "A Flautim experiment run (generated)"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.hatch.build.targets.wheel]",
        'packages = ["."]',
        "",
        "[tool.flwr.app]",
        'publisher = "flautim"',
        "",
        "[tool.flwr.app.components]",
        'serverapp = "flautim_fab.server_app:app"',
        'clientapp = "flautim_fab.client_app:app"',
        "",
        "[tool.flwr.app.config]",
    ]
    for key, value in config.items():
        lines.append(f"{key} = {toml_string(value) if isinstance(value, str) else value}")
    (app_dir / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return app_dir


# -- Flower's processes -----------------------------------------------------------------------
def flwr_cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    flwr = str(Path(sys.executable).with_name("flwr"))  # the flwr of our own environment
    return subprocess.run([flwr, *args], env=env, capture_output=True, text=True, timeout=timeout)


def flower_env(home: Path) -> dict[str, str]:
    """Environment of every Flower process: offline, our tuning, our own executables first."""
    tuning = {} if stock_mode() else {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": SUPEREXEC_POLL_S}
    # The SuperLink and SuperNodes start `flower-superexec` / `flwr-clientapp` by name.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {"FLWR_HOME": str(home), **OFFLINE_ENV, **tuning, "PATH": path}


def start_superlink(group: ProcessGroup, home: Path, host: str, port: int) -> None:
    bin_dir = Path(sys.executable).parent
    group.start(
        "superlink",
        [str(bin_dir / "flower-superlink"), "--insecure", "--disable-runtime-dependency-installation", "--host", host, "--port", str(port)],
        env=flower_env(home),
    )


def start_warm_clientapps(group: ProcessGroup, home: Path, share: int) -> tuple[Path | None, dict[str, str]]:
    """(scratch folder to remove at the end, environment for SuperNodes)."""
    env = flower_env(home)
    if stock_mode():
        return None, env
    # One warm parent forks every SuperNode's ClientApp processes (warm_clientapp.py).
    warm_dir = Path(tempfile.mkdtemp(prefix="flautim-warm-"))  # AF_UNIX paths are short
    socket_path = warm_dir / "clientapps.sock"
    group.start("clientapps", [sys.executable, "-m", "flautim.fl.transport.warm_clientapp", str(socket_path), "--share", str(share)])
    write_launcher(warm_dir / "bin", socket_path, Path(sys.executable).with_name("flwr-clientapp"))
    return warm_dir, {**env, "PATH": f"{warm_dir / 'bin'}{os.pathsep}{env['PATH']}"}


def supernode_command(address: str, client_id: int, data_dir: Path, bundle: Path, port: int) -> list[str]:
    node_config = f"client-id={client_id} data-dir={toml_string(str(data_dir))} bundle={toml_string(str(bundle))}"
    supernode = str(Path(sys.executable).with_name("flower-supernode"))
    return [supernode, "--insecure", "--superlink", address, "--node-config", node_config, "--port", str(port)]


# -- submitting and following the run ----------------------------------------------------------
def follow_events(path: Path, console: Console, stop: threading.Event) -> None:
    """Forward the events the ServerApp appends to `path` until `stop` is set."""
    while not path.exists() and not stop.is_set():
        time.sleep(0.1)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as stream:
        buffer = ""
        while True:
            chunk = stream.readline()
            if chunk:
                buffer += chunk
                if not buffer.endswith("\n"):
                    continue
                line, buffer = buffer.rstrip("\n"), ""
                try:
                    event = parse_line(line)
                except InvalidEvent as exc:
                    console.log("server", f"(ignored a malformed event: {exc})")
                    continue
                if event is not None:
                    console.event(event)
            elif stop.is_set():
                return
            else:
                time.sleep(0.05)


def submit_and_follow(
    *, bundle: Path, server_data: Path, out: Path, scratch: Path, clients: int, rounds: int,
    home: Path, address: str, wait_s: float, console: Console, deadline: float, started: float,
) -> int:
    """Submit the apps to the SuperLink at `address` and relay the run's events.

    `scratch` receives the FAB folder and the ServerApp's events file; `out` the checkpoints.
    `clients`/`rounds` are the command line's overrides (0: not given).
    """
    events_file = scratch / "events.jsonl"
    (home / "config.toml").write_text(f'[superlink.{FEDERATION}]\naddress = "{address}"\ninsecure = true\n')
    env = {**os.environ, **flower_env(home), "PYTHONUNBUFFERED": "1"}
    app_dir = write_fab_dir(
        scratch / "flower-app",
        {
            "bundle": str(bundle),
            "server-data": str(server_data),
            "out": str(out),
            "events-file": str(events_file),
            "clients": clients,
            "rounds": rounds,
            "reply-poll-s": 0.0 if stock_mode() else REPLY_POLL_S,
        },
    )
    stop = threading.Event()
    follower = threading.Thread(target=follow_events, args=(events_file, console, stop), daemon=True)
    follower.start()
    try:
        run_id = None
        submit_deadline = time.monotonic() + max(30.0, wait_s)
        last_error = ""
        while run_id is None and time.monotonic() < submit_deadline:
            result = flwr_cli(["run", str(app_dir), FEDERATION, "--format", "json"], env, timeout=120)
            try:
                reply = json.loads(result.stdout[result.stdout.find("{") :])
                run_id = reply.get("run-id") or reply.get("run_id")
            except ValueError:
                pass
            if run_id is None:
                last_error = (result.stdout + result.stderr).strip()[-500:]
                if not any(word in last_error.lower() for word in ("connect", "unavailable", "refused")):
                    break  # a rejected app, not a SuperLink still starting: retrying will not help
                time.sleep(1)
        if run_id is None:
            return fail(console, f"could not submit the run to the SuperLink: {last_error}", "flwr run", "see the SuperLink's log above", "infrastructure", started)
        console.log("runner", f"submitted Flower run {run_id}")
        next_check = time.monotonic() + STATUS_CHECK_S
        while time.monotonic() < deadline:
            if console.finished():
                break
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + STATUS_CHECK_S
                status = flwr_cli(["ls", FEDERATION, "--run-id", str(run_id), "--format", "json"], env, timeout=60).stdout
                if '"finished:' in status:
                    time.sleep(1.0)  # let the follower read the last lines
                    break
            time.sleep(0.1)
        else:
            return fail(console, "the run exceeded its time limit and was stopped", "run", "raise time_limit_s", "timeout", started)
    finally:
        stop.set()
        follower.join(timeout=5)
    finished = console.finished()
    if finished is None:
        return fail(console, "the Flower run ended without reporting a result", "ServerApp", "see the SuperLink's log above", "infrastructure", started)
    return 0 if finished.get("status") == "completed" else 1
