"""The apps a Flower deployment runs: what the FAB's `serverapp` and `clientapp` point at.

`flower_deployment.write_fab_dir` writes a FAB whose two modules import `server_app` and
`client_app` from here; its app config names the bundle, where the data and the outputs are
(data never travels in a FAB: it must already be on the nodes, exactly as `prepare` left it)
and the events file. A ServerApp's stdout goes to the SuperLink's SuperExec, not to whoever
deployed it, so the ServerApp appends its events to that file and the deployer follows it.

Flower's own waits are bounded here: `BoundedGrid` fails the run when fewer nodes than the
experiment needs are connected after `min_clients_wait_s` (stock FedAvg sleeps forever), and
a reply that does not come within the round deadline or the reply timeout fails the round
(ObservedStrategy).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run

from flautim.fl.apps import emit_run_started, load_client_session, make_client_app, make_server_app
from flautim.fl.bundle import Bundle
from flautim.fl.errors import FlautimError, as_flautim_error
from flautim.fl.events import EventWriter
from flautim.fl.round_deadline import LateClients, RoundDeadline, phase_of
from flautim.fl.run_settings import load_run_hyperparameters
from flautim.fl.session import ClientSession, ServerSession


class BoundedGrid(Grid):
    """Delegates to a stock Grid, but waits for the experiment's nodes a bounded time, and
    for a round's replies no longer than the round deadline (`flautim.fl.round_deadline`)."""

    # Set by the ServerApp; `late` names who missed it in the last send_and_receive.
    round_deadline: RoundDeadline | None = None
    late: LateClients | None = None

    def __init__(self, grid: Grid, num_clients: int, wait_s: float, poll_s: float | None) -> None:
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
        """Push, then pull replies every `poll_s` (the stock HttpGrid sleeps 3 s between
        pulls, up to 3 s more for each train and each evaluate phase of every round);
        `poll_s=None` is the stock behaviour."""
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


def _overrides(run_config: Any) -> tuple[int | None, int | None]:
    """The deployer's `--clients/--rounds` (0: not given)."""
    return int(run_config.get("clients", 0)) or None, int(run_config.get("rounds", 0)) or None


server_app = ServerApp()


@server_app.main()
def _server_main(grid: Grid, context: Context) -> None:
    started = time.time()
    cfg = context.run_config
    bundle_dir = Path(str(cfg["bundle"]))
    # The deployer's reply poll; 0 is stock Flower's own wait (FLAUTIM_FLOWER_STOCK=1).
    poll_s = float(cfg.get("reply-poll-s", 0.0)) or None
    stream = open(str(cfg["events-file"]), "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    events = EventWriter(stream)
    try:
        try:
            hp = load_run_hyperparameters(bundle_dir, *_overrides(cfg))
            emit_run_started(events, bundle_dir, hp, "flower")
        except Exception as exc:
            events.emit_failure(as_flautim_error(exc, bundle_dir, "the server could not start").event_fields(), started)
            raise

        def load_session(_context: Context) -> ServerSession:
            return ServerSession(Bundle.load(bundle_dir), hp, Path(str(cfg["server-data"])), Path(str(cfg["out"])))

        app = make_server_app(
            load_session,
            hp,
            events,
            lambda node_id, _content=None: f"node {node_id}",
            bundle_dir,
            started,
            prepare_grid=lambda g: BoundedGrid(g, int(hp.num_clients), float(hp.min_clients_wait_s), poll_s),
        )
        app(grid, context)
    finally:
        stream.close()


# One ClientSession per (bundle, data, client) in this ClientApp process.
_client_sessions: dict[tuple[str, str, int], ClientSession] = {}


def _client_session(context: Context) -> ClientSession:
    cfg = context.node_config
    key = (str(cfg["bundle"]), str(cfg["data-dir"]), int(cfg["client-id"]))
    if key not in _client_sessions:
        hp = load_run_hyperparameters(Path(key[0]), *_overrides(context.run_config))
        _client_sessions[key] = load_client_session(Path(key[0]), hp, Path(key[1]), key[2], device=str(hp.device))
    return _client_sessions[key]


client_app: ClientApp = make_client_app(
    _client_session,
    lambda context: int(context.node_config["client-id"]),
    lambda context: Path(str(context.node_config["bundle"])),
)
