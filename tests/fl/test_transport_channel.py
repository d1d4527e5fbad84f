"""The fast transport's wire: framed Flower Messages and JSON control frames over TCP."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from flautim.fl.transport.channel import Channel, ChannelClosed, parse_address
from flautim.fl.transport.fast import DirectGrid
from flautim.fl.transport.records import (
    arrays_to_weights,
    error_reply,
    flautim_record,
    metric_record,
    read_error_reply,
    read_flautim_record,
    weights_to_arrays,
)


def pair() -> tuple[Channel, Channel]:
    a, b = socket.socketpair()
    return Channel(a), Channel(b)


def test_parse_address():
    assert parse_address("127.0.0.1:9400") == ("127.0.0.1", 9400)
    assert parse_address("server:80") == ("server", 80)
    for bad in ("9400", "host:", "host:port", ":80"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)


def test_message_round_trip_keeps_weights_metadata_and_records():
    DirectGrid("127.0.0.1:0", 1).close()  # sets Flower's TaskIdentity, as the server does
    left, right = pair()
    weights = {"conv.weight": np.random.rand(8, 1, 3, 3).astype(np.float32), "fc.bias": np.arange(10, dtype=np.float64)}
    message = Message(RecordDict({"arrays": weights_to_arrays(weights), "config": ConfigRecord({"server-round": 3})}), 1002, "train")
    message.metadata.__dict__["_message_id"] = "abc"
    left.send_message(message)
    received = right.receive()
    assert isinstance(received, Message)
    assert received.metadata.message_id == "abc" and received.metadata.dst_node_id == 1002
    assert received.metadata.message_type == "train"
    got = arrays_to_weights(received.content["arrays"])
    for name, value in weights.items():
        np.testing.assert_array_equal(got[name], value)
        assert got[name].dtype == value.dtype
    assert received.content["config"]["server-round"] == 3

    reply = Message(RecordDict({"metrics": metric_record(0.5, 12, {"acc": 0.9, "note": "text"}),
                                "flautim": flautim_record(2, 1.5, 0.5, {"acc": 0.9, "note": "text"})}), reply_to=received)
    right.send_message(reply)
    back = left.receive()
    assert back.metadata.reply_to_message_id == "abc"
    assert dict(back.content["metrics"]) == {"acc": 0.9, "num-examples": 12, "loss": 0.5}
    info = read_flautim_record(back.content)
    assert info == {"client": 2, "duration_s": 1.5, "loss": 0.5, "metrics": {"acc": 0.9, "note": "text"},
                    "keys_read": []}


def test_error_reply_carries_the_flautim_error_fields():
    DirectGrid("127.0.0.1:0", 1).close()
    message = Message(RecordDict(), 1000, "evaluate")
    message.metadata.__dict__["_message_id"] = "m1"
    left, right = pair()
    left.send_message(error_reply(message, {"what": "x failed", "where": "api.py:9", "hint": "h", "kind": "user_code", "client": 0}))
    got = right.receive()
    assert got.has_error()
    assert read_error_reply(got) == {"what": "x failed", "where": "api.py:9", "hint": "h", "kind": "user_code", "client": 0}


def test_json_frames_and_closed_peer():
    left, right = pair()
    left.send_json({"type": "hello", "client_id": 4})
    assert right.receive() == {"type": "hello", "client_id": 4}
    left.close()
    with pytest.raises(ChannelClosed):
        right.receive()


def test_garbage_frames_are_rejected():
    a, b = socket.socketpair()
    right = Channel(b)
    a.sendall(struct.pack(">cI", b"X", 2) + b"{}")
    with pytest.raises(ChannelClosed, match="unknown frame kind"):
        right.receive()
    a.sendall(struct.pack(">cI", b"J", 2) + b"[]")
    with pytest.raises(ChannelClosed, match="not a JSON object"):
        right.receive()
