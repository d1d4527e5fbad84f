"""One Redis client (and connection pool) per URL per process, never shared across a fork."""

from __future__ import annotations

import os

from flautim.redis_connection import client_for

from .conftest import REDIS_URL as redis_url


def test_one_client_per_url_per_process():
    client = client_for(redis_url)
    assert client_for(redis_url) is client
    assert client_for(redis_url + "?x=1") is not client
    client.close()  # a caller's close() leaves the shared pool usable
    assert client.ping()


def test_the_pool_holds_more_connections_than_redis_pys_default_cap():
    """Each live stream holds a pub/sub connection: one process may hold over 100."""
    client = client_for(redis_url)
    subscribers = [client.pubsub() for _ in range(120)]
    try:
        for index, pubsub in enumerate(subscribers):
            pubsub.subscribe(f"flautim:test-pool:{index}")
        assert client.ping()
    finally:
        for pubsub in subscribers:
            pubsub.close()


def test_a_forked_child_gets_its_own_client():
    parent = client_for(redis_url)
    parent.ping()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh client that works
        child = client_for(redis_url)
        ok = child is not parent and child.ping()
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert parent.ping()
