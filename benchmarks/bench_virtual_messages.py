"""What a round's messages cost, client side and server side, when client processes host
virtual clients (issue 15 §2).

    .venv/bin/python benchmarks/bench_virtual_messages.py [--clients 1000] [--processes 16] [--phase evaluate]
    .venv/bin/python benchmarks/bench_virtual_messages.py --profile client   # or server: cProfile of "after"

The MNIST example partitioned for `--clients` clients (4 examples each at 1,000), hosted by
`--processes` client processes as `flautim run` would (contiguous groups), one phase of one
round through the real code, in one process, with no sockets: the server's `DirectGrid`
pushes FedAvg's messages (one RecordDict for all) onto each process's `Channel`, whose
frames are kept; each process's frames are read back by a client `Channel` and answered by
one warm ClientSession through the ClientApp (`serve_client`'s loop); the replies' frames
are read by the server's `Channel` and handed to the strategy (`ObservedStrategy` over
FedAvg, events written to /dev/null), as `send_and_receive` and Flower's loop do.

Two paths side by side, each run twice (the first reads the partitions), the second measured:
"before" sends every message whole and loads the weights with `load_state_dict` (the code
before shared content, but for `records.records_of`, which both use); "after" is the
default (one content frame per process, messages as references, `_LoadedWeights.copy_into`). CPU ms per message (process time: the machine's
load matters less than for wall time); nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import make_bundle  # noqa: E402


class FrameSink:
    """A socket for the sending side of a Channel: keeps what is sent."""

    family = socket.AF_UNIX

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.chunks.append(data)


class FrameReplay:
    """A socket for the receiving side of a Channel: hands back what a FrameSink kept."""

    family = socket.AF_UNIX

    def __init__(self, chunks: list[bytes]) -> None:
        self.data = memoryview(b"".join(chunks))
        self.at = 0

    def recv(self, size: int) -> bytes:
        chunk = bytes(self.data[self.at : self.at + size])
        self.at += len(chunk)
        return chunk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--phase", choices=("evaluate", "train"), default="evaluate")
    parser.add_argument("--profile", choices=("client", "server"), help="print a cProfile of that side (after)")
    args = parser.parse_args()

    import torch
    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.serverapp.strategy import FedAvg

    from flautim.fl import session as sessions
    from flautim.fl.apps import make_client_app
    from flautim.fl.bundle import Bundle
    from flautim.fl.events import EventWriter
    from flautim.fl.hyperparameters import load_hyperparameters
    from flautim.fl.prepare import prepare
    from flautim.fl.strategies import ObservedStrategy
    from flautim.fl.transport import records
    from flautim.fl.transport.channel import Channel
    from flautim.fl.transport.fast import NODE_ID_BASE, DirectGrid, _Peer
    from flautim.fl.virtual_clients import split_clients

    torch.set_num_threads(1)  # as each of the K client processes of a 1,000-client run
    work = Path(tempfile.mkdtemp(prefix="bench-virtual-"))
    bundle = make_bundle(work, args.clients, 5)
    hp = load_hyperparameters(bundle / "hyperparameters.py")
    prepare(Bundle.load(bundle), hp, work / "data")
    server = sessions.ServerSession(Bundle.load(bundle), hp, work / "data" / "server", work / "out")
    grid = DirectGrid("127.0.0.1:0", args.clients)  # also sets the run identity Message() needs
    groups = split_clients(list(range(args.clients)), args.processes)
    content = RecordDict({
        "arrays": records.weights_to_arrays(server.initial_weights()),
        "config": ConfigRecord({"server-round": 1, "batch-size": 32, "local-epochs": 1}),
    })
    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the whole run

    def one_round(timing: dict[str, float], profile: cProfile.Profile | None = None) -> None:
        sinks = [FrameSink() for _ in groups]
        peers = [_Peer(Channel(sink), group) for sink, group in zip(sinks, groups, strict=True)]
        for peer in peers:
            peer.ready = True
            grid._peers.update(dict.fromkeys(peer.client_ids, peer))
        messages = [Message(content, NODE_ID_BASE + c, args.phase, group_id="1") for c in range(args.clients)]
        side = "server"
        if profile and args.profile == side:
            profile.enable()
        start = time.process_time()
        grid.push_messages(messages)
        timing["server"] += time.process_time() - start
        if profile:
            profile.disable()
        grid._pending.clear()

        reply_sinks = []
        side = "client"
        for sink, group in zip(sinks, groups, strict=True):
            session = sessions.ClientSession(Bundle.load(bundle), hp, work / "data" / f"client-{group[0]}", group[0])
            session._partitions = partitions  # as warm as a process that has seen a round

            def session_for(context: Context, session: sessions.ClientSession = session) -> sessions.ClientSession:
                client = int(context.node_config["client-id"])
                session.become(client, work / "data" / f"client-{client}")
                return session

            app = make_client_app(session_for, lambda c: int(c.node_config["client-id"]), bundle)
            context = Context(run_id=0, node_id=0, node_config={"client-id": 0}, state=RecordDict(), run_config={})
            channel = Channel(FrameReplay(sink.chunks), shared_content=True)
            out = FrameSink()
            reply_channel = Channel(out)
            if profile and args.profile == side:
                profile.enable()
            start = time.process_time()
            for _ in group:  # serve_client's loop
                frame = channel.receive()
                context.run_id = frame.metadata.run_id
                context.node_id = frame.metadata.dst_node_id
                context.node_config["client-id"] = int(frame.metadata.dst_node_id) - NODE_ID_BASE
                reply_channel.send_message(app(message=frame, context=context))
            timing["client"] += time.process_time() - start
            if profile:
                profile.disable()
            reply_sinks.append(out)

        strategy = ObservedStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=1.0), EventWriter(devnull),
                                    lambda node, _content: node - NODE_ID_BASE, server.check_update)
        strategy._expected[args.phase] = {m.metadata.dst_node_id for m in messages}
        if profile and args.profile == "server":
            profile.enable()
        start = time.process_time()
        replies = []
        for out, group in zip(reply_sinks, groups, strict=True):
            channel = Channel(FrameReplay(out.chunks))
            replies.extend(channel.receive() for _ in group)
        if args.phase == "train":
            strategy.aggregate_train(1, replies)
        else:
            strategy.aggregate_evaluate(1, replies)
        timing["server"] += time.process_time() - start
        if profile:
            profile.disable()

    partitions = sessions.PartitionCache(sessions.PARTITION_CACHE_BYTES)
    original_of = sessions._LoadedWeights.of
    results = {}
    original_share = DirectGrid._share_content
    for name in ("before", "after"):
        if name == "before":  # every message whole, weights loaded with load_state_dict
            DirectGrid._share_content = lambda *_args: None
            sessions._LoadedWeights.of = classmethod(lambda cls, _model, weights, state: cls(weights, state, None))
        else:
            DirectGrid._share_content = original_share
            sessions._LoadedWeights.of = original_of
        profile = cProfile.Profile() if args.profile and name == "after" else None
        for measured in (False, True):
            timing = {"client": 0.0, "server": 0.0}
            one_round(timing, profile if measured else None)
        results[name] = {side: spent / args.clients * 1e3 for side, spent in timing.items()}
    grid.close()

    print(f"{args.clients} virtual clients in {len(groups)} processes, {args.phase}, 1 torch thread, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'':8} {'client CPU ms/msg':>18} {'server CPU ms/msg':>18}")
    for name, figures in results.items():
        print(f"{name:8} {figures['client']:18.3f} {figures['server']:18.3f}")
    before, after = results["before"], results["after"]
    print(f"{'ratio':8} {before['client'] / after['client']:17.2f}x {before['server'] / after['server']:17.2f}x")
    if profile is not None:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
