"""The Flower deployment transport: a stock SuperLink and N SuperNodes running our apps.

This is also the path for clients that join from outside: anything that can run
`flower-supernode --superlink HOST:PORT --node-config 'client-id=I data-dir="..." bundle="..."'`
with flautim installed can take part. The generic apps (apps.py) ship as a tiny FAB whose two
modules import `server_app` and `client_app` from here; the app config names the bundle and
where the data and the outputs are (data never travels in a FAB: it must already be on the
nodes, exactly as `prepare` left it).

Events: a ServerApp's stdout goes to the SuperLink's SuperExec, not to us, so the ServerApp
appends its events to the file named by the `events-file` app config and the runner follows
that file.

Flower's own waits are bounded here too: `BoundedGrid` fails the run when fewer nodes than
the experiment needs are connected after `min_clients_wait_s` (stock FedAvg sleeps forever),
and a reply that does not come within the reply timeout fails the round (ObservedStrategy).

Offline flags (GUIDE.md §4): `--disable-runtime-dependency-installation` on the SuperLink
(else every run tries `uv sync` and fails after ~50 s), a writable FLWR_HOME, no telemetry,
no update check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run

from flautim.fl.errors import FlautimError
from flautim.fl.events import EventWriter, InvalidEvent, parse_line
from flautim.fl.round_deadline import LateClients, RoundDeadline, phase_of

OFFLINE_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
FEDERATION = "flautim"
# Speed-ups that stay inside Flower's public surface (FLAUTIM_FLOWER_STOCK=1 turns them off,
# which is how the benchmark measures a stock deployment of the same apps):
# - the ServerApp pulls replies every REPLY_POLL_S through the Grid API instead of sleeping
#   3 s between pulls (flwr/superlink/grid/http_grid.py);
# - SuperExec polls for new tasks every SUPEREXEC_POLL_S instead of 1 s
#   (FLWR_SUPEREXEC_TASK_POLL_INTERVAL; 0.05 s costs ~0.7 cores idle, 0.2 s is cheap);
# - each message's `flwr-clientapp` process is forked from one warm parent instead of
#   starting cold (warm_clientapp.py): ~8x shorter rounds.
REPLY_POLL_S = 0.1
SUPEREXEC_POLL_S = "0.2"


def stock_mode() -> bool:
    return os.environ.get("FLAUTIM_FLOWER_STOCK", "") == "1"


class BoundedGrid(Grid):
    """Delegates to a stock Grid, but waits for the experiment's nodes a bounded time, and
    for a round's replies no longer than the round deadline (`flautim.fl.round_deadline`)."""

    # Set by the ServerApp; `late` names who missed it in the last send_and_receive.
    round_deadline: RoundDeadline | None = None
    late: LateClients | None = None

    def __init__(self, grid: Grid, num_clients: int, wait_s: float, poll_s: float | None = REPLY_POLL_S) -> None:
        self.grid = grid
        self.num_clients = num_clients
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._dropped: set[int] = set()

    def drop_nodes(self, node_ids: Iterable[int]) -> None:
        """Leave these SuperNodes out of the run from now on (late at a round deadline)."""
        self._dropped.update(int(n) for n in node_ids)

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        deadline = time.monotonic() + self.wait_s
        while True:
            nodes = [n for n in self.grid.get_node_ids() if n not in self._dropped]
            if len(nodes) >= self.num_clients - len(self._dropped):
                return nodes
            if time.monotonic() >= deadline:
                raise FlautimError(
                    what=f"only {len(nodes)} of {self.num_clients} clients (SuperNodes) were "
                    f"connected after {self.wait_s:.0f} s",
                    where="SuperLink",
                    hint="start the missing SuperNodes, or raise min_clients_wait_s in hyperparameters.py",
                    kind="timeout",
                )
            time.sleep(0.2)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Push, then pull replies every `poll_s` (the stock HttpGrid sleeps 3 s between pulls,
        which adds up to 3 s to each train and each evaluate phase of every round)."""
        if self.poll_s is None:
            return self.grid.send_and_receive(messages, timeout=timeout)
        messages = list(messages)
        phase = phase_of(messages[0].metadata.message_type) if messages else ""
        sent_at = time.monotonic()
        ids = list(self.grid.push_messages(messages))
        node_of = {mid: m.metadata.dst_node_id for mid, m in zip(ids, messages, strict=False)}
        waiting = set(ids)
        end = None if timeout is None else sent_at + timeout
        replies: list[Message] = []
        answered_s: list[float] = []
        self.late = None
        while waiting:
            got = list(self.grid.pull_messages(waiting))
            replies.extend(got)
            answered_s.extend([time.monotonic() - sent_at] * len(got))
            waiting.difference_update(m.metadata.reply_to_message_id for m in got)
            if not waiting:
                break
            now = time.monotonic()
            limit = self.round_deadline.limit_s(phase, answered_s) if self.round_deadline else None
            if limit is not None and now - sent_at >= limit and (end is None or sent_at + limit < end):
                self.late = LateClients(
                    phase, sorted(node_of[m] for m in waiting), now - sent_at, self.round_deadline.rule(phase, answered_s)
                )
                break
            if end is not None and now >= end:
                break
            time.sleep(self.poll_s)
        if self.round_deadline is not None:
            self.round_deadline.record(phase, answered_s)
        return replies


# -- the apps the FAB points at -------------------------------------------------------------
server_app = ServerApp()


@server_app.main()
def _server_main(grid: Grid, context: Context) -> None:
    from flautim.fl.apps import as_flautim_error, make_server_app
    from flautim.fl.transport.processes import _load_hyperparameters

    started = time.time()
    cfg = context.run_config
    bundle_dir = Path(str(cfg["bundle"]))
    stream = open(str(cfg["events-file"]), "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    events = EventWriter(stream)
    try:
        try:
            hp = _load_hyperparameters(bundle_dir, int(cfg["clients"]) or None, int(cfg["rounds"]) or None)
            events.emit(
                "run_started",
                experiment=bundle_dir.resolve().name,
                transport="flower",
                clients=int(hp.num_clients),
                rounds=int(hp.rounds),
                strategy=str(hp.strategy),
                hyperparameters=hp.to_dict(),
            )
        except Exception as exc:
            error = as_flautim_error(exc, bundle_dir, "the server could not start")
            events.emit("error", **error.event_fields())
            events.emit("run_finished", status="failed", duration_s=round(time.time() - started, 3), rounds_completed=0)
            raise

        def load_session(_context: Context) -> Any:
            from flautim.fl.bundle import Bundle
            from flautim.fl.session import ServerSession

            return ServerSession(Bundle.load(bundle_dir), hp, Path(str(cfg["server-data"])), Path(str(cfg["out"])))

        app = make_server_app(
            load_session,
            hp,
            events,
            lambda node_id, _content=None: f"node {node_id}",
            bundle_dir,
            started,
            prepare_grid=lambda g: BoundedGrid(
                g, int(hp.num_clients), float(hp.min_clients_wait_s), None if stock_mode() else REPLY_POLL_S
            ),
        )
        app(grid, context)
    finally:
        stream.close()


_client_sessions: dict[tuple[str, str, int], Any] = {}


def _client_session(context: Context) -> Any:
    from flautim.fl.apps import load_client_session
    from flautim.fl.transport.processes import _load_hyperparameters

    cfg = context.node_config
    key = (str(cfg["bundle"]), str(cfg["data-dir"]), int(cfg["client-id"]))
    if key not in _client_sessions:
        run = context.run_config
        hp = _load_hyperparameters(Path(key[0]), int(run.get("clients", 0)) or None, int(run.get("rounds", 0)) or None)
        _client_sessions[key] = load_client_session(Path(key[0]), hp, Path(key[1]), key[2], device=str(hp.device))
    return _client_sessions[key]


def _make_client_app() -> ClientApp:
    from flautim.fl.apps import make_client_app

    return make_client_app(
        _client_session,
        lambda context: int(context.node_config["client-id"]),
        lambda context: Path(str(context.node_config["bundle"])),
    )


client_app = _make_client_app()


# -- the FAB ----------------------------------------------------------------------------------
def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_fab_dir(app_dir: Path, config: dict[str, Any]) -> Path:
    """A Flower app folder whose components are this module's apps."""
    package = app_dir / "flautim_fab"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""Flautim generic apps (generated)."""\n')
    # `flwr run` checks the components by reading the module for an `app = ...` assignment.
    (package / "server_app.py").write_text("import flautim.fl.transport.flower as flautim_apps\n\napp = flautim_apps.server_app\n")
    (package / "client_app.py").write_text("import flautim.fl.transport.flower as flautim_apps\n\napp = flautim_apps.client_app\n")
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


# -- the runner side ------------------------------------------------------------------------
def follow_events(path: Path, console: Any, stop: threading.Event) -> None:
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


def flwr_cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    flwr = str(Path(sys.executable).with_name("flwr"))  # the flwr of our own environment
    return subprocess.run([flwr, *args], env=env, capture_output=True, text=True, timeout=timeout)


def flower_env(home: Path) -> dict[str, str]:
    """Environment of every Flower process: offline, our tuning, our own executables first."""
    tuning = {} if stock_mode() else {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": SUPEREXEC_POLL_S}
    # The SuperLink and SuperNodes start `flower-superexec` / `flwr-clientapp` by name.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {"FLWR_HOME": str(home), **OFFLINE_ENV, **tuning, "PATH": path}


def start_superlink(group: Any, home: Path, host: str, port: int) -> None:
    bin_dir = Path(sys.executable).parent
    group.start(
        "superlink",
        [str(bin_dir / "flower-superlink"), "--insecure", "--disable-runtime-dependency-installation", "--host", host, "--port", str(port)],
        env=flower_env(home),
    )


def start_warm_clientapps(group: Any, home: Path, share: int) -> tuple[Path | None, dict[str, str]]:
    """(scratch folder to remove at the end, environment for SuperNodes)."""
    env = flower_env(home)
    if stock_mode():
        return None, env
    # One warm parent forks every SuperNode's ClientApp processes (warm_clientapp.py).
    from flautim.fl.transport.warm_clientapp import write_launcher

    warm_dir = Path(tempfile.mkdtemp(prefix="flautim-warm-"))  # AF_UNIX paths are short
    socket_path = warm_dir / "clientapps.sock"
    group.start("clientapps", [sys.executable, "-m", "flautim.fl.transport.warm_clientapp", str(socket_path), "--share", str(share)])
    write_launcher(warm_dir / "bin", socket_path, Path(sys.executable).with_name("flwr-clientapp"))
    return warm_dir, {**env, "PATH": f"{warm_dir / 'bin'}{os.pathsep}{env['PATH']}"}


def supernode_command(address: str, client_id: int, data_dir: Path, bundle: Path, port: int) -> list[str]:
    node_config = f"client-id={client_id} data-dir={toml_string(str(data_dir))} bundle={toml_string(str(bundle))}"
    supernode = str(Path(sys.executable).with_name("flower-supernode"))
    return [supernode, "--insecure", "--superlink", address, "--node-config", node_config, "--port", str(port)]


def submit_and_follow(
    *, bundle: Path, server_data: Path, out: Path, scratch: Path, clients: int, rounds: int,
    home: Path, address: str, wait_s: float, console: Any, deadline: float, started: float,
) -> int:
    """Submit the generic apps to the SuperLink at `address` and relay the run's events.

    `scratch` receives the FAB folder and the ServerApp's events file; `out` the checkpoints.
    """
    events_file = scratch / "events.jsonl"
    from flautim.fl.runner import fail

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
        next_check = time.monotonic() + 15
        while time.monotonic() < deadline:
            if console.finished():
                break
            if time.monotonic() >= next_check:
                # The ServerApp may die before it can write run_finished: ask Flower.
                next_check = time.monotonic() + 15
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


def run_flower(args: Any, group: Any, workdir: Path, out: Path, console: Any, deadline: float, started: float) -> int:
    """`flautim run --transport flower`: a SuperLink and N SuperNodes on this machine."""
    from flautim.fl.runner import free_port, num_clients, read_limits

    n = num_clients(args, workdir)
    _, wait_s = read_limits(Path(args.bundle))
    home = out / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    link_port = free_port()
    address = f"127.0.0.1:{link_port}"
    start_superlink(group, home, "127.0.0.1", link_port)
    warm_dir, node_env = start_warm_clientapps(group, home, n)
    bundle = Path(args.bundle).resolve()
    try:
        for i in range(n):
            group.start(f"supernode {i}", supernode_command(address, i, (workdir / f"client-{i}").resolve(), bundle, free_port()), env=node_env)
        return submit_and_follow(
            bundle=bundle, server_data=(workdir / "server").resolve(), out=out.resolve(),
            scratch=out.resolve(), clients=int(args.clients or 0), rounds=int(args.rounds or 0),
            home=home, address=address, wait_s=wait_s, console=console, deadline=deadline, started=started,
        )
    finally:
        group.kill_all()
        group.drain()
        if warm_dir is not None:
            shutil.rmtree(warm_dir, ignore_errors=True)
