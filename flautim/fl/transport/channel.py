"""A framed TCP channel between the server process and one client process.

Each frame is `kind` (1 byte) + `length` (4 bytes, big endian) + payload. Two kinds:
`M` carries a Flower Message serialised with Flower's own protobuf helpers, `J` a JSON
control object (hello, ready, bye). TCP rather than pipes because the Docker sandbox puts
the server and each client in different containers on one internal network.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from typing import Any

from flwr.app import Message
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage  # type: ignore[attr-defined]

KIND_MESSAGE = b"M"
KIND_JSON = b"J"
HEADER = struct.Struct(">cI")
# A 27k-parameter CNN is ~110 KB; even large models stay far below this. The cap stops a
# corrupt header from making us allocate gigabytes.
MAX_FRAME_BYTES = 2 * 1024**3 - 1


class ChannelClosed(ConnectionError):
    """The peer went away (closed the socket or its process died)."""


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` -> (host, port), with a clear error for anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


class Channel:
    """One side of a connection; `send_*` is thread-safe, `receive` is for one reader."""

    def __init__(self, sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # A reply is one small write: do not let Nagle hold it back for the next one.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._send_lock = threading.Lock()
        self.bytes_sent = 0
        self.bytes_received = 0

    @classmethod
    def connect(cls, address: str, timeout_s: float) -> Channel:
        """Connect to `address`, retrying until `timeout_s` (the server may start later)."""
        host, port = parse_address(address)
        deadline = time.monotonic() + timeout_s
        last_error: OSError | None = None
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection((host, port), timeout=5)
                sock.settimeout(None)
                return cls(sock)
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

    def send_message(self, message: Message) -> None:
        self._send(KIND_MESSAGE, message_to_proto(message).SerializeToString())

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
        """The next frame: a Flower Message or a JSON control dict. Raises ChannelClosed."""
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
        raise ChannelClosed(f"unknown frame kind {kind!r}")

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
