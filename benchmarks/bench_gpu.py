"""GPU benchmark: the MNIST example with `device = "cuda"` against the CPU, through `flautim run`.

    python benchmarks/bench_gpu.py [--clients 10] [--rounds 5] [--transports fast,flower]

Runs the runtime issue's MNIST bundle (5,000 real digits, N clients, R rounds, 1 local epoch,
FedAvg) on this machine's GPU and on its CPU, with each transport, and prints per run: total
wall time, start to round 1, mean of rounds 2..R, final central accuracy, and the GPU's peak
memory in use and peak number of processes holding a CUDA context (sampled from nvidia-smi
every 0.2 s). Needs a machine with an NVIDIA GPU and nvidia-smi; on one without, it says so
and exits. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runtime import make_bundle, run_events, timings  # noqa: E402


class GpuSampler:
    """Peak memory used (MiB) and peak count of compute processes, from nvidia-smi."""

    def __init__(self) -> None:
        self.peak_mib = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _query(self, *args: str) -> list[str]:
        out = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                used = self._query("--query-gpu=memory.used")
                procs = self._query("--query-compute-apps=pid")
            except (OSError, subprocess.SubprocessError):
                return
            if used and used[0].isdigit():
                self.peak_mib = max(self.peak_mib, int(used[0]))
            self.peak_procs = max(self.peak_procs, len(procs))

    def __enter__(self) -> GpuSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


def final_accuracy(events: list[dict]) -> float | None:
    central = [e for e in events if e.get("type") == "central_evaluate" and e.get("round")]
    if not central:
        return None
    return central[-1].get("metrics", {}).get("accuracy")


def measure(bundle: Path, device: str, transport: str, clients: int, rounds: int) -> dict | str:
    hp = bundle / "hyperparameters.py"
    text = "\n".join(line for line in hp.read_text().splitlines() if not line.startswith("device"))
    hp.write_text(text + f"\ndevice = {device!r}\n")
    cmd = [sys.executable, "-m", "flautim.cli", "run", str(bundle), "--json", "--clients", str(clients),
           "--rounds", str(rounds), "--transport", transport]
    with GpuSampler() as gpu:
        events, launched, ended, stderr = run_events(cmd, timeout=900)
    result = timings(events, launched, ended, rounds)
    if not result["ok"]:
        return f"FAILED: {stderr[-600:]}"
    result.update(accuracy=final_accuracy(events), gpu_mib=gpu.peak_mib, gpu_procs=gpu.peak_procs)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--transports", default="fast,flower")
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None:
        print("no nvidia-smi on this machine: nothing to measure")
        return 1
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
    import torch

    print(f"GPU: {gpu}; torch {torch.__version__}, cuda available: {torch.cuda.is_available()}; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print(f"MNIST-5k, {args.clients} clients, {args.rounds} rounds x 1 local epoch, FedAvg")
    print(f"{'device':6} {'transport':9} {'total s':>8} {'to round 1 s':>13} {'round 2-R s':>12} "
          f"{'accuracy':>9} {'GPU MiB':>8} {'CUDA procs':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp), args.clients, args.rounds)
        for transport in filter(None, args.transports.split(",")):
            for device in ("cuda", "cpu"):
                r = measure(bundle, device, transport, args.clients, args.rounds)
                if isinstance(r, str):
                    print(f"{device:6} {transport:9} {r}", flush=True)
                    continue
                acc = f"{r['accuracy']:.4f}" if isinstance(r["accuracy"], float) else "-"
                print(f"{device:6} {transport:9} {r['total']:8.2f} {r['first_round']:13.2f} {r['round']:12.3f} "
                      f"{acc:>9} {r['gpu_mib']:8d} {r['gpu_procs']:10d}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
