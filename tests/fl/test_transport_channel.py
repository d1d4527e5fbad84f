"""The fast transport's wire: framed Flower Messages and JSON control frames over TCP."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.serde import message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage  # type: ignore[attr-defined]

from flautim.fl.transport.channel import (
    CONTENT_HEADER,
    MAX_SHARED_CONTENTS,
    REFERENCE_HEADER,
    Channel,
    ChannelClosed,
    ProtocolError,
    encode_content,
    parse_address,
)
from flautim.fl.transport.fast import DirectGrid, _Peer, node_id_of
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


def grid_with_processes(*hosted: list[int]) -> tuple[DirectGrid, list[Channel]]:
    """A DirectGrid whose client processes are the far ends of socket pairs."""
    grid = DirectGrid("127.0.0.1:0", sum(map(len, hosted)))
    receivers = []
    for clients in hosted:
        server_side, client_side = socket.socketpair()
        peer = _Peer(Channel(server_side), clients)
        peer.ready = True
        grid._peers.update(dict.fromkeys(clients, peer))
        receivers.append(Channel(client_side, shared_content=True))
    return grid, receivers


def global_model(seed: int, inputs: int = 40) -> RecordDict:
    """A RecordDict as FedAvg sends it; small by default so that unread frames fit in a
    socket pair's buffer."""
    rng = np.random.default_rng(seed)
    weights = {"conv.weight": rng.random((8, 1, 3, 3), dtype=np.float32), "fc.weight": rng.random((64, inputs), dtype=np.float32)}
    return RecordDict({"arrays": weights_to_arrays(weights), "config": ConfigRecord({"server-round": seed})})


def whole_message_bytes(content: RecordDict) -> int:
    message = Message(content, 1000, "evaluate")
    message.metadata.__dict__["_message_id"] = "x" * 32
    return len(message_to_proto(message).SerializeToString())


def test_a_content_every_message_carries_goes_once_to_each_process():
    grid, (first, second) = grid_with_processes([0, 1, 2, 3, 4], [5, 6])
    content = global_model(1, inputs=400)  # the MNIST example's size
    messages = [Message(content, node_id_of(c), "evaluate", group_id="1") for c in range(7)]
    ids = list(grid.push_messages(messages))
    first_peer, second_peer = grid._peers[0], grid._peers[5]
    # One content frame, then one small frame per message.
    assert first_peer.channel.frames_sent == 1 + 5 and second_peer.channel.frames_sent == 1 + 2
    assert first_peer.channel.bytes_sent < 1.1 * whole_message_bytes(content)
    grid.close()
    received = [first.receive() for _ in range(5)] + [second.receive() for _ in range(2)]
    assert [m.metadata.message_id for m in received] == ids
    assert [m.metadata.dst_node_id for m in received] == [node_id_of(c) for c in range(7)]
    assert {m.metadata.message_type for m in received} == {"evaluate"}
    assert {m.metadata.group_id for m in received} == {"1"}
    # Parsed once per process: the messages of a process share one RecordDict.
    assert all(m.content is received[0].content for m in received[:5])
    for m in received:
        assert m.content["config"]["server-round"] == 1
        for name, value in arrays_to_weights(content["arrays"]).items():
            np.testing.assert_array_equal(arrays_to_weights(m.content["arrays"])[name], value)


def test_distinct_contents_each_reach_their_messages():
    grid, (process,) = grid_with_processes([0, 1, 2, 3, 4])
    a, b, alone = global_model(1), global_model(2), global_model(3)
    contents = [a, b, a, alone, b]  # interleaved; one carried by a single message
    grid.push_messages([Message(c, node_id_of(i), "train", group_id="1") for i, c in enumerate(contents)])
    assert grid._peers[0].channel.frames_sent == 2 + 5
    grid.close()
    got = [process.receive() for _ in contents]
    assert [m.content["config"]["server-round"] for m in got] == [1, 2, 1, 3, 2]
    assert got[0].content is got[2].content and got[1].content is got[4].content


def test_past_the_limit_of_held_contents_messages_travel_whole():
    count = MAX_SHARED_CONTENTS + 2
    grid, (process,) = grid_with_processes(list(range(2 * count)))
    contents = [global_model(i) for i in range(count)]
    messages = [Message(contents[i % count], node_id_of(i), "train", group_id="1") for i in range(2 * count)]
    grid.push_messages(messages)
    grid.close()
    got = [process.receive() for _ in messages]
    assert [m.content["config"]["server-round"] for m in got] == [i % count for i in range(2 * count)]
    assert len(process._contents) == MAX_SHARED_CONTENTS


def test_a_later_send_lets_the_process_forget_the_earlier_content():
    grid, (process,) = grid_with_processes([0, 1])
    old, new = global_model(1), global_model(2)
    grid.push_messages([Message(old, node_id_of(c), "train", group_id="1") for c in (0, 1)])
    grid.push_messages([Message(new, node_id_of(c), "evaluate", group_id="1") for c in (0, 1)])
    grid.close()
    rounds = [process.receive().content["config"]["server-round"] for _ in range(4)]
    assert rounds == [1, 1, 2, 2] and len(process._contents) == 1


def test_a_reference_to_content_never_sent_is_refused():
    a, b = socket.socketpair()
    receiver = Channel(b, shared_content=True)
    metadata = ProtoMessage().SerializeToString()
    payload = REFERENCE_HEADER.pack(99) + metadata
    a.sendall(struct.pack(">cI", b"R", len(payload)) + payload)
    with pytest.raises(ProtocolError, match="content 99, never sent"):
        receiver.receive()


def test_the_server_side_takes_no_shared_content():
    a, b = socket.socketpair()
    sender, server_side = Channel(a), Channel(b)
    sender.send_content(1, 1, encode_content(global_model(1)))
    with pytest.raises(ProtocolError, match="takes none"):
        server_side.receive()


def test_broken_shared_content_frames_are_protocol_errors():
    a, b = socket.socketpair()
    receiver = Channel(b, shared_content=True)
    a.sendall(struct.pack(">cI", b"C", 3) + b"abc")
    with pytest.raises(ProtocolError, match="shorter than its header"):
        receiver.receive()
    a2, b2 = socket.socketpair()
    receiver = Channel(b2, shared_content=True)
    payload = CONTENT_HEADER.pack(1, 1) + b"\xff\xff\xff"
    a2.sendall(struct.pack(">cI", b"C", len(payload)) + payload)
    with pytest.raises(ProtocolError, match="does not parse"):
        receiver.receive()
