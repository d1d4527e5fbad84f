"""A per-attempt Redis key the running job keeps fresh; the reaper treats a missing one as
a dead worker. Survives a Redis restart: the next beat writes the key again.

The key is written from a thread of its own, every third of its time to live: the job's
supervision loop can be busy for long stretches (starting hundreds of containers, a slow
ingest, the database restarting while the final state is recorded), and a heartbeat written
from that loop would lapse and let another worker's reaper kill a healthy run. The thread
lives in the work horse, so it dies with it: a killed horse stops beating at once.
"""

from __future__ import annotations

import logging
import socket
import threading

import redis

log = logging.getLogger(__name__)

# The shortest time to live a configuration may ask for (tests use a few seconds).
MIN_TTL_S = 2


def heartbeat_key(experiment_id: int, attempt: int) -> str:
    return f"flautim:heartbeat:{int(experiment_id)}:{int(attempt)}"


class Heartbeat:
    def __init__(self, rconn: redis.Redis | None, config, experiment_id: int, attempt: int) -> None:
        self.rconn = rconn
        self.ttl = max(MIN_TTL_S, int(config.WORKER_HEARTBEAT_TTL_S))
        self.interval_s = self.ttl / 3
        self.key = heartbeat_key(experiment_id, attempt)
        self.value = socket.gethostname()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        if self.rconn is None or self._stopped.is_set():
            return
        try:
            self.rconn.set(self.key, self.value, ex=self.ttl)
        except redis.RedisError as exc:
            log.warning("heartbeat %s not written: %s", self.key, exc)

    def start(self) -> Heartbeat:
        """Beat now, then every `interval_s` from a daemon thread until `stop()`."""
        self.beat()
        if self.rconn is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.key}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.beat()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.rconn is None:
            return
        try:
            self.rconn.delete(self.key)
        except redis.RedisError:
            pass


def is_alive(rconn: redis.Redis, experiment_id: int, attempt: int) -> bool:
    return bool(rconn.exists(heartbeat_key(experiment_id, attempt)))
