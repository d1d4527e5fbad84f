"""Path (b) of bench_runtime.py: a bundle in Flower's simulation engine (Ray actors).

    .venv/bin/python benchmarks/flower_simulation.py BUNDLE --clients N --rounds R [--sessions per-message]

Needs the `bench` extra (`pip install -e ".[bench]"`: flwr[simulation], which brings Ray).
It runs the same apps as every other path: Flautim's generic ServerApp and ClientApp from
`flautim.fl.transport.flower_apps` (what path (c) ships in its FAB), on the partitions
`prepare` writes, with `flwr.simulation.run_simulation` (Flower 1.42's Python entry point
to the simulation runtime) and 1 CPU per client actor, as Flower's guides set it up.
Events go to stdout as `flautim run --json` prints them.

`--sessions kept` (default): an actor keeps each client's session (user code, partition,
model) across messages, as Flautim's ClientApp does in a long-lived process. `per-message`:
each message builds its client's session anew, as Flower's quickstarts do (model and data
loaders built inside the `@app.train()` function).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

CLIENT_RESOURCES = {"num_cpus": 1, "num_gpus": 0.0}


def simulation_apps(bundle: Path, work: Path, keep_sessions: bool = True) -> tuple[Any, Any]:
    """A ServerApp and a ClientApp that fill in what a Flower deployment's configs would
    carry (simulation gives the server an empty run config and each virtual node only
    `partition-id`), then call Flautim's deployment apps unchanged."""
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp

    server_app, client_app = ServerApp(), ClientApp()

    @server_app.main()
    def serve(grid: Grid, context: Context) -> None:
        from flautim.fl.transport import flower_apps

        context.run_config.update(
            {"bundle": str(bundle), "server-data": str(work / "server"), "out": str(work / "out"), "events-file": "/dev/stdout"}
        )
        flower_apps.server_app(grid, context)

    def handle(message: Message, context: Context) -> Message:
        # Imported by name inside the actor, so its per-process session cache outlives a
        # message (Ray pickles this function anew with every message it sends an actor).
        from flautim.fl.transport import flower_apps

        client = int(context.node_config["partition-id"])
        context.node_config.update({"client-id": client, "data-dir": str(work / f"client-{client}"), "bundle": str(bundle)})
        try:
            return flower_apps.client_app(message=message, context=context)
        finally:
            if not keep_sessions:
                flower_apps._client_sessions.clear()

    client_app.train()(handle)
    client_app.evaluate()(handle)
    return server_app, client_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--sessions", choices=["kept", "per-message"], default="kept")
    args = parser.parse_args()

    from flwr.simulation import run_simulation

    from flautim.fl.bundle import Bundle
    from flautim.fl.prepare import prepare
    from flautim.fl.run_settings import load_run_hyperparameters

    bundle = args.bundle.resolve()
    hp = load_run_hyperparameters(bundle, args.clients, args.rounds)
    with tempfile.TemporaryDirectory(prefix="flower-sim-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        prepare(Bundle.load(bundle), hp, work)
        print(f"prepare: {time.monotonic() - started:.1f} s", flush=True)
        server_app, client_app = simulation_apps(bundle, work, keep_sessions=args.sessions == "kept")
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=args.clients,
            backend_config={"client_resources": CLIENT_RESOURCES},
        )


if __name__ == "__main__":
    main()
