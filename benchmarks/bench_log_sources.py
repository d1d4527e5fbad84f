"""What the experiment page's Logs picker costs a view at 1,000 and 10,000 clients, before
(every source sorted, an <option> each) and after (log_picker.summarize: the other sources,
the clients' count and range). The work runs on every view, before the panels' cache is
asked (the summary is part of its key). Prints the load average; asserts nothing.

    .venv/bin/python benchmarks/bench_log_sources.py
"""

from __future__ import annotations

import os
import sys
import timeit
from html import escape
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's flautim, not the installed one

from flautim.web.experiments.log_picker import summarize  # noqa: E402
from flautim.web.experiments.results import source_order  # noqa: E402


def before(sources: list[str]) -> tuple[tuple[str, ...], int]:
    ordered = tuple(source_order(sources))
    return ordered, sum(len(f'<option value="{escape(s)}">{escape(s)}</option>') for s in ordered)


def after(sources: list[str]):
    summary = summarize(sources)
    listed = summary.sources + summary.listed + ("clients", "client")
    return summary, sum(len(f'<option value="{escape(s)}">{escape(s)}</option>') for s in listed)


def main() -> None:
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
          f"{os.cpu_count()} cores")
    print(f"{'clients':>8} {'before ms':>10} {'after ms':>9} {'before <option> bytes':>22} {'after':>6}")
    for clients in (1000, 10_000):
        # As the worker keeps them: in the order lines first came.
        sources = ["platform", "prepare", "server"] + [f"client-{c}" for c in range(clients)] + ["superlink"]
        times = {}
        for name, fn in (("before", before), ("after", after)):
            times[name] = min(timeit.repeat(lambda fn=fn, sources=sources: fn(sources), number=20, repeat=5)) / 20 * 1e3
        print(f"{clients:>8} {times['before']:>10.2f} {times['after']:>9.2f} {before(sources)[1]:>22,} "
              f"{after(sources)[1]:>6,}")


if __name__ == "__main__":
    main()
