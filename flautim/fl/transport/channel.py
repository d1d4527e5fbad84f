"""A framed TCP channel between the server process and one client process.

Each frame is `kind` (1 byte) + `length` (4 bytes, big endian) + payload. Kinds:
`M` carries a Flower Message serialised with Flower's own protobuf helpers, `J` a JSON
control object (hello, ready, bye). TCP rather than pipes because the Docker sandbox puts
the server and each client in different containers on one internal network.

Shared content, server to client only: a strategy sends one RecordDict (the global
weights) in every message of a round, and a process hosting virtual clients receives
hundreds of them. `C` carries such a content once (its id, the lowest id still live, and
Flower's protobuf of the RecordDict); `R` carries a message's metadata and the id of its
content. The receiving side parses the content once and builds each Message around that
one RecordDict. A reference to content never sent, contents past `MAX_SHARED_CONTENTS`, or
these frames on a channel that did not ask for them are protocol errors.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from typing import Any

from flwr.app import Message, RecordDict
from flwr.app.message import make_message
from flwr.common.serde import (
    message_from_proto,
    message_to_proto,
    metadata_from_proto,
    metadata_to_proto,
    recorddict_from_proto,
    recorddict_to_proto,
)
from flwr.proto.message_pb2 import Message as ProtoMessage  # type: ignore[attr-defined]
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict  # type: ignore[attr-defined]
from google.protobuf.message import DecodeError

KIND_MESSAGE = b"M"
KIND_JSON = b"J"
KIND_CONTENT = b"C"
KIND_REFERENCE = b"R"
HEADER = struct.Struct(">cI")
CONTENT_HEADER = struct.Struct(">QQ")  # content id, lowest content id still live
REFERENCE_HEADER = struct.Struct(">Q")  # content id
# Shared contents a receiver holds at once: one per distinct content a strategy sends in
# one call (FedAvg: one); the sender falls back to whole messages beyond it.
MAX_SHARED_CONTENTS = 8
# A 27k-parameter CNN is ~110 KB; even large models stay far below this. The cap stops a
# corrupt header from making us allocate gigabytes.
MAX_FRAME_BYTES = 2 * 1024**3 - 1


class ChannelClosed(ConnectionError):
    """The peer went away (closed the socket or its process died)."""


class ProtocolError(ChannelClosed):
    """The peer sent something this side must not accept; the channel is unusable."""


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` -> (host, port), with a clear error for anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def encode_content(content: RecordDict) -> bytes:
    """A RecordDict as a `C` frame carries it, serialised once for every peer it goes to."""
    return recorddict_to_proto(content).SerializeToString()


class Channel:
    """One side of a connection; `send_*` is thread-safe, `receive` is for one reader.

    `shared_content`: this side accepts `C`/`R` frames (a client process; never the server,
    whose peers have no reason to send them)."""

    def __init__(self, sock: socket.socket, shared_content: bool = False) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # A reply is one small write: do not let Nagle hold it back for the next one.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._send_lock = threading.Lock()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.frames_sent = 0
        self._contents: dict[int, RecordDict] | None = {} if shared_content else None

    @classmethod
    def connect(cls, address: str, timeout_s: float, shared_content: bool = False) -> Channel:
        """Connect to `address`, retrying until `timeout_s` (the server may start later)."""
        host, port = parse_address(address)
        deadline = time.monotonic() + timeout_s
        last_error: OSError | None = None
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection((host, port), timeout=5)
                sock.settimeout(None)
                return cls(sock, shared_content)
            except OSError as exc:
                last_error = exc
                time.sleep(0.05)
        raise ConnectionError(f"could not reach the server at {address} within {timeout_s:.0f} s: {last_error}")

    def _send(self, kind: bytes, payload: bytes) -> None:
        frame = HEADER.pack(kind, len(payload)) + payload
        with self._send_lock:
            try:
                self._sock.sendall(frame)
            except OSError as exc:
                raise ChannelClosed(str(exc)) from exc
        self.bytes_sent += len(frame)
        self.frames_sent += 1

    def send_message(self, message: Message, content_id: int | None = None) -> None:
        """`message` whole, or, with `content_id`, its metadata and a reference to a content
        sent before on this channel (`send_content`)."""
        if content_id is None:
            self._send(KIND_MESSAGE, message_to_proto(message).SerializeToString())
            return
        proto = ProtoMessage(metadata=metadata_to_proto(message.metadata))
        self._send(KIND_REFERENCE, REFERENCE_HEADER.pack(content_id) + proto.SerializeToString())

    def send_content(self, content_id: int, live_from: int, encoded: bytes) -> None:
        """A content (`encode_content`) that `R` frames will name by `content_id`; the
        receiver forgets every content below `live_from`."""
        self._send(KIND_CONTENT, CONTENT_HEADER.pack(content_id, live_from) + encoded)

    def send_json(self, obj: dict[str, Any]) -> None:
        self._send(KIND_JSON, json.dumps(obj, default=str).encode())

    def _read_exact(self, size: int) -> bytes:
        chunks = []
        remaining = size
        while remaining:
            try:
                chunk = self._sock.recv(min(remaining, 1 << 20))
            except OSError as exc:
                raise ChannelClosed(str(exc)) from exc
            if not chunk:
                raise ChannelClosed("connection closed by peer")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> Message | dict[str, Any]:
        """The next frame: a Flower Message or a JSON control dict. Raises ChannelClosed
        (ProtocolError for frames this side must refuse)."""
        while True:
            kind, size = HEADER.unpack(self._read_exact(HEADER.size))
            if size > MAX_FRAME_BYTES:
                raise ChannelClosed(f"frame of {size} bytes is larger than allowed")
            payload = self._read_exact(size)
            self.bytes_received += HEADER.size + size
            if kind == KIND_MESSAGE:
                proto = ProtoMessage()
                proto.ParseFromString(payload)
                return message_from_proto(proto)
            if kind == KIND_JSON:
                obj = json.loads(payload)
                if not isinstance(obj, dict):
                    raise ChannelClosed("control frame is not a JSON object")
                return obj
            if kind not in (KIND_CONTENT, KIND_REFERENCE):
                raise ChannelClosed(f"unknown frame kind {kind!r}")
            if self._contents is None:
                raise ProtocolError(f"protocol error: a shared-content frame {kind!r} on a channel that takes none")
            if kind == KIND_REFERENCE:
                return self._referring_message(payload)
            self._keep_content(payload)  # then read on: a content is not a message

    def _keep_content(self, payload: bytes) -> None:
        if len(payload) < CONTENT_HEADER.size:
            raise ProtocolError("protocol error: content frame shorter than its header")
        content_id, live_from = CONTENT_HEADER.unpack_from(payload)
        contents = self._contents
        assert contents is not None
        for stale in [key for key in contents if key < live_from]:
            del contents[stale]
        if content_id < live_from or content_id in contents:
            raise ProtocolError(f"protocol error: content {content_id} sent again or already forgotten")
        if len(contents) >= MAX_SHARED_CONTENTS:
            raise ProtocolError(f"protocol error: more than {MAX_SHARED_CONTENTS} shared contents held at once")
        proto = ProtoRecordDict()
        try:
            proto.ParseFromString(payload[CONTENT_HEADER.size :])
            contents[content_id] = recorddict_from_proto(proto)
        except (DecodeError, ValueError, TypeError, KeyError) as exc:
            raise ProtocolError(f"protocol error: content {content_id} does not parse: {exc}") from None

    def _referring_message(self, payload: bytes) -> Message:
        if len(payload) < REFERENCE_HEADER.size:
            raise ProtocolError("protocol error: message frame shorter than its header")
        (content_id,) = REFERENCE_HEADER.unpack_from(payload)
        content = self._contents.get(content_id) if self._contents is not None else None
        if content is None:
            raise ProtocolError(f"protocol error: a message refers to content {content_id}, never sent or forgotten")
        proto = ProtoMessage()
        try:
            proto.ParseFromString(payload[REFERENCE_HEADER.size :])
        except DecodeError as exc:
            raise ProtocolError(f"protocol error: a message frame does not parse: {exc}") from None
        if proto.HasField("content") or proto.HasField("error"):
            raise ProtocolError("protocol error: a message that refers to shared content carries content of its own")
        return make_message(metadata=metadata_from_proto(proto.metadata), content=content)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
