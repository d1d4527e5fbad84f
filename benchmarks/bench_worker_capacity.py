"""What reading the live workers' capacity costs the dispatcher, which does it on every
submission and after every job: the set of names it reads now (SMEMBERS + MGET) beside a
scan of Redis's keyspace for the advertisement keys, side by side, with the keyspace of a
busy site (RQ jobs, heartbeats, live channels' state).

    .venv/bin/python benchmarks/bench_worker_capacity.py [--redis redis://127.0.0.1:6379/14]
        [--other-keys 100000] [--workers 4]

It empties that Redis database before and after.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flautim.worker.capacity import (  # noqa: E402
    KEY_PREFIX,
    WorkerCapacity,
    advertise,
    encode,
    live_workers,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--other-keys", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--reads", type=int, default=20)
    args = parser.parse_args()
    connection = redis.Redis.from_url(args.redis)
    connection.flushdb()
    try:
        with connection.pipeline() as pipe:
            for i in range(args.other_keys):
                pipe.set(f"rq:job:filler-{i}", "x")
            pipe.execute()
        for i in range(args.workers):
            capacity = WorkerCapacity(
                name=f"w{i}", host="h", backend="docker", queues=["experiments"], cores=2,
                cpus_per_container=1.0, memory_total_mb=8192, memory_for_runs_mb=6144,
                run_base_mb=4096, client_mb={"fast": 1024, "flower": 2048})
            advertise(connection, capacity.name, encode(capacity), 600)

        def scan():
            return connection.mget(sorted(connection.scan_iter(match=KEY_PREFIX + "*", count=500)))

        print(f"{args.workers} workers, {args.other_keys:,} other keys, mean of {args.reads} reads")
        for name, read in (("scan of the keyspace", scan), ("SMEMBERS + MGET", lambda: live_workers(connection))):
            started = time.perf_counter()
            for _ in range(args.reads):
                read()
            print(f"  {name}: {(time.perf_counter() - started) / args.reads * 1000:.2f} ms")
    finally:
        connection.flushdb()


if __name__ == "__main__":
    main()
