"""benchmarks/process_tree_memory.py counts the processes a run leaves behind (as Ray's
driver leaves gcs_server, raylet and its actors), and ends them after the run."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# In a child interpreter: becoming a subreaper is for the life of the process.
PROBE = textwrap.dedent(
    """
    import subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    from process_tree_memory import TreeMemory

    # The launched process starts a child and exits at once, as a driver whose daemons
    # outlive it; the orphan then takes ~64 MiB.
    orphan = "import time; time.sleep(0.5); b = bytearray(64 << 20); b[::4096] = b'x' * (len(b) // 4096); time.sleep(60)"
    spawn = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {orphan!r}])"
    with TreeMemory(interval_s=0.1, linger_s=1.0) as memory:
        subprocess.run([sys.executable, "-c", spawn], check=True)
        time.sleep(1.5)
    figures = memory.figures()
    print(figures["peak_pss_gib"], figures["left_running"])
    """
)


def test_orphans_of_a_run_are_measured_and_ended():
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "benchmarks")], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    peak_pss_gib, left_running = float(out[0]), int(out[1])
    assert peak_pss_gib >= 60 / 1024, "the orphan's 64 MiB were not in the tree's peak"
    assert left_running == 1, "the orphan still running after the run was not found and ended"
