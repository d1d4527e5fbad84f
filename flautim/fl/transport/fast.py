"""The default transport: Flower's ServerApp and ClientApp over a direct TCP channel.

`DirectGrid` is a `flwr.serverapp.grid.Grid` (Flower's public extension point for how a
strategy reaches its nodes). The server process listens on HOST:PORT; each client process
(`serve_client`) connects once, keeps torch and the user's code loaded for the whole run,
and answers every Message by calling the ClientApp object directly. Messages travel as
Flower's own protobuf (`flwr.common.serde`), one frame each; replies wake the server at
once (no polling), so a round costs what training costs plus a few milliseconds.

What a custom Grid must do that Flower's docstrings leave out: set
`TaskIdentity` in the server process (Message() reads the run id from it), assign message
ids itself (there is no public setter; both stock grids write `_message_id`), and have every
client present before the strategy samples nodes (FedAvg sleeps 1 s per check otherwise).

Failure handling, so nothing waits forever: clients must all arrive within a bounded wait;
a client whose connection drops (its process died) fails the pending round at once; a client
still silent at the round deadline (`flautim.fl.round_deadline`) is reported late, and the
strategy wrapper drops it or fails the round; a reply that takes longer than the timeout
fails it too.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from flwr.app import Context, Message, RecordDict
from flwr.proto.node_pb2 import NodeInfo  # type: ignore[attr-defined]
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from flautim.fl.errors import FlautimError
from flautim.fl.round_deadline import LateClients, RoundDeadline, phase_of
from flautim.fl.transport.channel import (
    MAX_SHARED_CONTENTS,
    Channel,
    ChannelClosed,
    ProtocolError,
    encode_content,
    parse_address,
)

SERVER_NODE_ID = 1  # Flower's SUPERLINK_NODE_ID: the sender of instructions
NODE_ID_BASE = 1000  # client i is node NODE_ID_BASE + i; readable in Flower's own logs


def node_id_of(client_id: int) -> int:
    return NODE_ID_BASE + int(client_id)


class _Peer:
    """One client process: the clients it hosts (several with virtual clients) answer in
    the order their messages arrive."""

    def __init__(self, channel: Channel, client_ids: list[int]) -> None:
        self.channel = channel
        self.client_ids = client_ids
        self.ready = False
        self.alive = True
        self.info: dict[str, Any] = {}


class DirectGrid(Grid):
    """Server side of the fast transport: a Grid whose nodes are connected client processes."""

    # Set by the ServerApp; `late` names who missed it in the last send_and_receive.
    round_deadline: RoundDeadline | None = None
    late: LateClients | None = None

    def __init__(self, listen: str, num_clients: int, run_id: int | None = None) -> None:
        host, port = parse_address(listen)
        self.num_clients = num_clients
        self._run = Run.create_empty(run_id or int.from_bytes(os.urandom(7), "big"))
        self._cond = threading.Condition()
        self._peers: dict[int, _Peer] = {}
        self._replies: dict[str, Message] = {}
        self._pending: dict[str, int] = {}  # message id -> node id
        self._arrived: list[str] | None = None  # replies not yet seen by send_and_receive
        self._client_errors: list[dict[str, Any]] = []
        self._dropped: set[int] = set()  # client ids given up on (late at a round deadline)
        self._closing = False
        self._next_content_id = 1  # ids of contents shared by several messages (push_messages)
        self._server = socket.create_server((host, port), reuse_port=False)
        self.address = f"{host}:{self._server.getsockname()[1]}"
        TaskIdentity.run_id = self._run.run_id
        TaskIdentity.node_id = SERVER_NODE_ID
        TaskIdentity.task_id = 0
        threading.Thread(target=self._accept_loop, name="flautim-accept", daemon=True).start()

    # -- connections -------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_peer, args=(Channel(sock),), daemon=True).start()

    def _serve_peer(self, channel: Channel) -> None:
        peer: _Peer | None = None
        try:
            hello = channel.receive()
            if not isinstance(hello, dict) or hello.get("type") != "hello":
                channel.close()
                return
            client_id = int(hello["client_id"])
            hosted = [int(c) for c in hello.get("client_ids") or [client_id]]
            peer = _Peer(channel, hosted)
            with self._cond:
                taken = [c for c in hosted if c in self._peers and self._peers[c].alive]
                if taken:
                    channel.send_json({"type": "refused", "reason": f"client {taken[0]} is already connected"})
                    channel.close()
                    return
                # Every client the process hosts maps to it: the grid's node ids stay the
                # logical clients, and a message goes to the process that hosts its client.
                self._peers.update(dict.fromkeys(hosted, peer))
                self._cond.notify_all()
            while True:
                frame = channel.receive()
                with self._cond:
                    if isinstance(frame, Message):
                        reply_to = frame.metadata.reply_to_message_id
                        if reply_to in self._pending:
                            self._replies[reply_to] = frame
                            if self._arrived is not None:
                                self._arrived.append(reply_to)
                    elif frame.get("type") == "ready":
                        peer.ready = True
                        peer.info = frame
                    elif frame.get("type") == "error":
                        fields = dict(frame.get("error") or {})
                        fields.setdefault("client", client_id)
                        self._client_errors.append(fields)
                    self._cond.notify_all()
        except (ChannelClosed, ValueError, KeyError, TypeError):
            pass
        finally:
            if peer is not None:
                with self._cond:
                    peer.alive = False
                    self._cond.notify_all()

    def _raise_client_errors(self) -> None:
        if self._client_errors:
            raise FlautimError.from_fields(self._client_errors[0])

    def _dead_clients(self) -> list[int]:
        return sorted(cid for cid, peer in self._peers.items() if not peer.alive and cid not in self._dropped)

    def drop_nodes(self, node_ids: Iterable[int]) -> None:
        """Leave these nodes out of the run from now on (late at a round deadline): they are
        never sampled again, and their end is not the run's failure."""
        with self._cond:
            self._dropped.update(self.client_of(n) for n in node_ids)

    def _raise_if_lost(self) -> None:
        self._raise_client_errors()
        dead = self._dead_clients()
        if dead:
            named = ", ".join(map(str, dead[:10])) + (f" and {len(dead) - 10} more" if len(dead) > 10 else "")
            raise FlautimError(
                what=f"client {named} stopped: its process ended or lost "
                "its connection to the server",
                where=f"client {dead[0]}",
                hint="see that client's log; a process killed for memory ends like this",
                kind="infrastructure",
                client=dead[0],
                code="round.client_stopped",
                params={"clients": named},
            )

    def wait_for_clients(self, timeout_s: float, load_timeout_s: float = 600.0) -> list[int]:
        """Block until every client has connected (within `timeout_s`) and then loaded its
        code and data (within `load_timeout_s` more); FlautimError naming who is missing.

        Two bounds because they fail for different reasons: a client that never arrives is
        a deployment problem, one that arrives but takes long to load is busy importing
        torch or reading a large partition, which a crowded machine can make slow.
        """
        self._wait_until(lambda p: True, timeout_s, "connected", "min_clients_wait_s")
        return self._wait_until(lambda p: p.ready, load_timeout_s, "ready (loaded their code and data)", "time_limit_s")

    def _wait_until(self, condition: Any, timeout_s: float, state: str, setting: str) -> list[int]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                self._raise_if_lost()
                ok = [cid for cid, p in self._peers.items() if p.alive and condition(p)]
                if len(ok) >= self.num_clients:
                    return sorted(ok)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sorted(set(range(self.num_clients)) - set(ok))
                    raise FlautimError(
                        what=f"only {len(ok)} of {self.num_clients} clients were {state} after "
                        f"{timeout_s:.0f} s (missing: {', '.join(map(str, missing))})",
                        where="start of the run",
                        hint=f"raise {setting} in hyperparameters.py, or check that every "
                        "client process started",
                        kind="timeout",
                    )
                self._cond.wait(min(remaining, 1.0))

    def client_of(self, node_id: int, _content: Any = None) -> int:
        return int(node_id) - NODE_ID_BASE

    # -- Grid API ---------------------------------------------------------------------------
    def set_run(self, run: Run) -> None:
        if not isinstance(run, Run):
            raise TypeError(f"`run` must be an instance of Run, got {type(run).__name__}")
        self._run = run
        TaskIdentity.run_id = run.run_id

    @property
    def run(self) -> Run:
        return Run(**vars(self._run))

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        with self._cond:
            # Sampling a dead node would wait for a reply that never comes: fail instead.
            self._raise_if_lost()
            return [
                node_id_of(cid) for cid, p in sorted(self._peers.items())
                if p.ready and p.alive and cid not in self._dropped
            ]

    def get_nodes(self) -> Iterable[NodeInfo]:
        return [NodeInfo(node_id=node_id) for node_id in self.get_node_ids()]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        # A content object that several messages carry (FedAvg: one RecordDict, the global
        # model, for every sampled node) is serialised once and sent once per process;
        # its messages then travel as metadata and a reference (`channel`'s C and R frames).
        carried: dict[int, int] = {}
        for message in messages:
            if message.has_content():
                carried[id(message.content)] = carried.get(id(message.content), 0) + 1
        live_from = self._next_content_id
        encoded: dict[int, tuple[int, bytes]] = {}  # id(content) -> (content id, bytes)
        sent: dict[int, set[int]] = {}  # id(peer) -> content ids that process holds now
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            node_id = message.metadata.dst_node_id
            with self._cond:
                peer = self._peers.get(self.client_of(node_id))
                if peer is None or not peer.alive:
                    self._raise_if_lost()
                    raise FlautimError(
                        what=f"no client with node id {node_id}",
                        where="server",
                        kind="infrastructure",
                    )
                self._pending[message.metadata.message_id] = node_id
            try:
                content_id = None
                if message.has_content() and carried[id(message.content)] > 1:
                    content_id = self._share_content(peer, message.content, encoded, sent.setdefault(id(peer), set()), live_from)
                peer.channel.send_message(message, content_id)
            except ChannelClosed:
                with self._cond:
                    peer.alive = False
                self._raise_if_lost()
            ids.append(message.metadata.message_id)
        return ids

    def _share_content(
        self, peer: _Peer, content: RecordDict, encoded: dict[int, tuple[int, bytes]], held: set[int], live_from: int
    ) -> int | None:
        """The id under which `peer` holds `content` (sending it first if it does not yet),
        or None when that process already holds as many contents as it may."""
        if id(content) not in encoded:
            encoded[id(content)] = (self._next_content_id, encode_content(content))
            self._next_content_id += 1
        content_id, data = encoded[id(content)]
        if content_id in held:
            return content_id
        if len(held) >= MAX_SHARED_CONTENTS:
            return None
        peer.channel.send_content(content_id, live_from, data)
        held.add(content_id)
        return content_id

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        out = []
        with self._cond:
            for message_id in message_ids:
                reply = self._replies.pop(message_id, None)
                if reply is not None:
                    self._pending.pop(message_id, None)
                    out.append(reply)
        return out

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        phase = phase_of(messages[0].metadata.message_type) if messages else ""
        sent_at = time.monotonic()
        deadline = None if timeout is None else sent_at + timeout
        replies: list[Message] = []
        # Work per wake-up is bounded by the replies that arrived and the client processes,
        # never by the round's messages: with 1,000 virtual clients on 16 processes, a scan
        # of every waiting message at each of the 1,000 wake-ups cost seconds per round.
        with self._cond:
            self._arrived = []
        waiting_on: dict[int, set[str]] = {}  # id(peer) -> its messages not yet answered
        peers: dict[int, _Peer] = {}
        for message_id in self.push_messages(messages):
            peer = self._peers[self.client_of(self._pending[message_id])]
            waiting_on.setdefault(id(peer), set()).add(message_id)
            peers[id(peer)] = peer
        # How long each answer took its process: a process hosting several sampled clients
        # trains them one after another, so a client's clock starts when its process last
        # answered (or at sending), not when the round's messages left. Only the slowest
        # answer matters to the deadline.
        slowest: list[float] = []
        busy_since: dict[int, float] = dict.fromkeys(peers, sent_at)
        late_nodes: list[int] = []
        self.late = None
        with self._cond:
            while waiting_on:
                arrived, self._arrived = self._arrived, []
                now = time.monotonic()
                for message_id in arrived:
                    node_id = self._pending.get(message_id)
                    peer = self._peers.get(self.client_of(node_id)) if node_id is not None else None
                    if peer is None or message_id not in waiting_on.get(id(peer), ()):
                        continue
                    replies.append(self._replies.pop(message_id))
                    del self._pending[message_id]
                    slowest = [max([*slowest, now - busy_since[id(peer)]])]
                    busy_since[id(peer)] = now
                    waiting_on[id(peer)].discard(message_id)
                    if not waiting_on[id(peer)]:
                        del waiting_on[id(peer)]
                if not waiting_on:
                    break
                # A peer that died while we wait will never answer; stop now, not at timeout.
                if any(not peers[key].alive for key in waiting_on):
                    self._raise_if_lost()
                if deadline is not None and now >= deadline:
                    for ids in waiting_on.values():
                        for message_id in ids:
                            self._pending.pop(message_id, None)
                    break
                limit = self.round_deadline.limit_s(phase, slowest) if self.round_deadline else None
                if limit is not None:
                    # A process silent past the deadline: every client still queued on it is late.
                    for key in [k for k in waiting_on if now - busy_since[k] >= limit]:
                        for message_id in waiting_on.pop(key):
                            late_nodes.append(self._pending.pop(message_id))
                    if not waiting_on:
                        break
                ends = [deadline] if deadline is not None else []
                if limit is not None:
                    ends.append(min(busy_since[k] for k in waiting_on) + limit)
                remaining = min(ends) - now if ends else None
                self._cond.wait(max(0.0, remaining) if remaining is not None else 1.0)
            self._arrived = None
            if late_nodes:
                self.late = LateClients(
                    phase, sorted(late_nodes), time.monotonic() - sent_at, self.round_deadline.rule(phase, slowest)
                )
        if self.round_deadline is not None:
            self.round_deadline.record(phase, slowest)
        return replies

    def traffic(self) -> dict[str, int]:
        with self._cond:
            peers = self._processes()
        return {
            "bytes_sent": sum(p.channel.bytes_sent for p in peers),
            "bytes_received": sum(p.channel.bytes_received for p in peers),
        }

    def _processes(self) -> list[_Peer]:
        return list({id(p): p for p in self._peers.values()}.values())

    def close(self) -> None:
        """Tell every client the run is over and stop listening."""
        self._closing = True
        with self._cond:
            peers = self._processes()
        for peer in peers:
            try:
                peer.channel.send_json({"type": "bye"})
            except ChannelClosed:
                pass
        try:
            self._server.close()
        except OSError:
            pass


def serve_client(
    server: str,
    client_ids: int | list[int],
    load_app: Callable[[], Any],
    connect_timeout_s: float = 120.0,
    on_error: Callable[[BaseException], dict[str, Any]] | None = None,
) -> int:
    """Client side: connect, load the app once (warm), answer messages until the server says bye.

    `client_ids`: the client this process is, or the clients it hosts (virtual clients),
    answered one message at a time with the same app; the Context of each message names
    its client (`node_id`, `node_config["client-id"]`). `load_app()` returns the ClientApp;
    it runs after the connection is made so the server sees the client arrive early and
    gets a clear error if loading the user's code fails. Returns the process exit code.
    """
    hosted = [client_ids] if isinstance(client_ids, int) else list(client_ids)
    client_id = hosted[0]
    channel = Channel.connect(server, connect_timeout_s, shared_content=True)
    channel.send_json({"type": "hello", "client_id": client_id, "client_ids": hosted, "pid": os.getpid()})
    try:
        client_app = load_app()
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the server
        fields = on_error(exc) if on_error else {"what": str(exc), "where": "", "hint": "", "kind": "infrastructure"}
        fields.setdefault("client", client_id)
        try:
            channel.send_json({"type": "error", "error": fields})
        finally:
            channel.close()
        return 1
    channel.send_json({"type": "ready", "client_id": client_id})
    context = Context(
        run_id=0, node_id=node_id_of(client_id), node_config={"client-id": client_id}, state=RecordDict(), run_config={}
    )
    try:
        while True:
            frame = channel.receive()
            if isinstance(frame, dict):
                if frame.get("type") in {"bye", "refused"}:
                    return 0 if frame.get("type") == "bye" else 1
                continue
            context.run_id = frame.metadata.run_id
            context.node_id = frame.metadata.dst_node_id
            context.node_config["client-id"] = int(frame.metadata.dst_node_id) - NODE_ID_BASE
            reply = client_app(message=frame, context=context)
            channel.send_message(reply)
    except ProtocolError as exc:
        print(f"[client {client_id}] {exc}", file=sys.stderr, flush=True)
        return 1
    except ChannelClosed:
        # The server went away without a bye: it failed or was stopped; nothing to answer.
        return 1
    finally:
        channel.close()
