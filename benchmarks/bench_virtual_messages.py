"""What one client process pays per message when it hosts virtual clients (issue 15 §2).

    .venv/bin/python benchmarks/bench_virtual_messages.py [--clients 300] [--phase evaluate]

The MNIST example partitioned for 1,000 clients (4 examples each), one warm ClientSession
answering evaluate (or train) messages for `--clients` of them, each message built and
serialised as the server does and parsed and answered as `serve_client` does. Two passes
(a round to read the partitions, then the round measured), side by side in one process:
"per message" decodes the global weights, checks them and reads the partition for every
message (what the process did before); "kept" is the default (`WeightsDecoder`,
`ClientSession._load_global`, `PartitionCache`). CPU ms per message (process time, so the
machine's load matters less than for wall time); nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import make_bundle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--phase", choices=("evaluate", "train"), default="evaluate")
    args = parser.parse_args()

    import torch
    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.common.serde import message_from_proto, message_to_proto
    from flwr.proto.message_pb2 import Message as ProtoMessage  # type: ignore[attr-defined]
    from flwr.supercore.task_identity import TaskIdentity

    from flautim.fl import session as sessions
    from flautim.fl.apps import make_client_app
    from flautim.fl.bundle import Bundle
    from flautim.fl.hyperparameters import load_hyperparameters
    from flautim.fl.prepare import prepare
    from flautim.fl.transport import records

    torch.set_num_threads(1)  # as each of the K client processes of a 1,000-client run
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 1, 0
    work = Path(tempfile.mkdtemp(prefix="bench-virtual-"))
    bundle = make_bundle(work, 1000, 5)
    hp = load_hyperparameters(bundle / "hyperparameters.py")
    prepare(Bundle.load(bundle), hp, work / "data")
    server = sessions.ServerSession(Bundle.load(bundle), hp, work / "data" / "server", work / "out")
    arrays = records.weights_to_arrays(server.initial_weights())
    frames = []
    for i in range(args.clients):
        content = RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": 1, "batch-size": 32})})
        message = Message(content, 1000 + i, args.phase, group_id="1")
        message.metadata.__dict__["_message_id"] = uuid.uuid4().hex
        frames.append(message_to_proto(message).SerializeToString())

    def answer_all(kept: bool) -> float:
        session = sessions.ClientSession(Bundle.load(bundle), hp, work / "data" / "client-0", 0)
        if not kept:
            session._partitions = sessions.PartitionCache(0)

        def session_for(context: Context) -> sessions.ClientSession:
            client = int(context.node_config["client-id"])
            session.become(client, work / "data" / f"client-{client}")
            if not kept:
                session._global = None
            return session

        app = make_client_app(session_for, lambda c: int(c.node_config["client-id"]), bundle)
        context = Context(run_id=0, node_id=1000, node_config={"client-id": 0}, state=RecordDict(), run_config={})
        spent = 0.0
        for measured in (False, True):
            start = time.process_time()
            for frame in frames:
                proto = ProtoMessage()
                proto.ParseFromString(frame)
                message = message_from_proto(proto)
                context.node_id = message.metadata.dst_node_id
                context.node_config["client-id"] = context.node_id - 1000
                message_to_proto(app(message=message, context=context)).SerializeToString()
            if measured:
                spent = time.process_time() - start
        return spent / len(frames) * 1e3

    original_call = records.WeightsDecoder.__call__
    # A decoder that forgets: every message decoded again.
    records.WeightsDecoder.__call__ = lambda _self, a: records.arrays_to_weights(a)  # type: ignore[method-assign]
    before = answer_all(kept=False)
    records.WeightsDecoder.__call__ = original_call  # type: ignore[method-assign]
    after = answer_all(kept=True)
    print(f"{args.clients} virtual clients, {args.phase}, one process, 1 torch thread")
    print(f"  per message: {before:.2f} CPU ms per message")
    print(f"  kept:        {after:.2f} CPU ms per message   ({before / after:.2f}x less)")


if __name__ == "__main__":
    main()
