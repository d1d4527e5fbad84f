"""A per-attempt Redis key the running job keeps fresh; the reaper treats a missing one as
a dead worker. Survives a Redis restart: the next beat writes the key again."""

from __future__ import annotations

import logging
import socket

import redis

log = logging.getLogger(__name__)


def heartbeat_key(experiment_id: int, attempt: int) -> str:
    return f"flautim:heartbeat:{int(experiment_id)}:{int(attempt)}"


class Heartbeat:
    def __init__(self, rconn: redis.Redis | None, config, experiment_id: int, attempt: int) -> None:
        self.rconn = rconn
        self.ttl = max(10, int(config.WORKER_HEARTBEAT_TTL_S))
        self.key = heartbeat_key(experiment_id, attempt)
        self.value = socket.gethostname()

    def beat(self) -> None:
        if self.rconn is None:
            return
        try:
            self.rconn.set(self.key, self.value, ex=self.ttl)
        except redis.RedisError as exc:
            log.warning("heartbeat %s not written: %s", self.key, exc)

    def stop(self) -> None:
        if self.rconn is None:
            return
        try:
            self.rconn.delete(self.key)
        except redis.RedisError:
            pass


def is_alive(rconn: redis.Redis, experiment_id: int, attempt: int) -> bool:
    return bool(rconn.exists(heartbeat_key(experiment_id, attempt)))
