"""Response bodies built once per version of their data, with ETags.

A run's metrics are thousands of numbers, costly to read and encode on every request, yet
they change only when the worker stores a new batch. Views compute a cheap
version of what they show (e.g. the newest metric row's id), then ask `cached_response` for
the body under a key that names *everything* the body depends on. Because the key carries
the version, nothing is ever invalidated by hand: new rows give a new key, and the old
bodies fall out of the LRU. `cached_fragment` does the same for a piece of a page (the
experiment page's tabs), keyed by the plain values it shows. Whole pages are not kept:
they carry the session's user, CSRF token and flashed messages, which belong to Flask's
and its extensions' request handling, not to a cache key.

Security: the cache sits *after* the access check. A view looks its object up through
`flautim.web.projects.access` (404/403 on every request, nothing cached there) and only
then calls `cached_response` or `cached_fragment`. Bodies that differ by user, role or language must put those
in the key; the metric bodies depend on none of them.

One cache per app (so per gunicorn worker, and per test app): a few MB per worker, no
network hop, and nothing shared between databases that reuse the same ids.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sized

import orjson
from flask import Flask, Response, current_app, request

from flautim.web import flautim_config

EXTENSION = "flautim_response_cache"


def json_bytes(body: object) -> bytes:
    """JSON for API bodies, several times faster than the standard library's."""
    return orjson.dumps(body)


class BodyCache:
    """A thread-safe LRU of encoded bodies (or page fragments, or log_pages' blocks: anything
    whose len() is its size in bytes), bounded by their total size."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._bodies: OrderedDict[Hashable, Sized] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Sized | None:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body

    def get_or_build(self, key: Hashable, build: Callable[[], bytes | str]) -> bytes | str:
        """The body under `key`, built by `build()` and stored on a miss."""
        body = self.get(key)
        if body is None:
            body = build()
            self.put(key, body)
        return body

    def put(self, key: Hashable, body: Sized) -> None:
        if len(body) > self.max_bytes // 4:
            return  # one huge body would evict everything else
        with self._lock:
            old = self._bodies.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._bodies[key] = body
            self._size += len(body)
            while self._size > self.max_bytes:
                _key, evicted = self._bodies.popitem(last=False)
                self._size -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._bodies.clear()
            self._size = 0

    def __len__(self) -> int:
        return len(self._bodies)


def etag_for(key: Hashable) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()[:32]


# Below about one packet, compression saves nothing worth a header.
GZIP_MIN_BYTES = 1400
# Each encoding of a body is its own representation with its own ETag (RFC 9110 8.8.3).
GZIP_ETAG_SUFFIX = "-gzip"


def cached_response(
    key: Hashable, build: Callable[[], bytes], mimetype: str = "application/json"
) -> Response:
    """The body stored under `key` (built by `build()` on a miss) with an ETag; 304 when the
    request's If-None-Match already names it. Call only after the access check.

    A client that accepts gzip (every browser; `requests`, so the CLI) gets the body
    compressed: a 200-round run's metrics go from 1 MB to a fraction of it. The compressed
    body is cached beside the plain one, so it is compressed once per version, not per
    request."""
    etag = etag_for(key)
    for tag in (etag, etag + GZIP_ETAG_SUFFIX):
        if tag in request.if_none_match:
            response = Response(status=304)
            response.set_etag(tag)
            return _revalidated(response)
    cache: BodyCache = current_app.extensions[EXTENSION]
    body = cache.get_or_build(key, build)
    if len(body) >= GZIP_MIN_BYTES and request.accept_encodings.quality("gzip"):
        packed = cache.get_or_build(("gzip", key), lambda: gzip.compress(body, compresslevel=6, mtime=0))
        response = Response(packed, mimetype=mimetype)
        response.headers["Content-Encoding"] = "gzip"
        response.set_etag(etag + GZIP_ETAG_SUFFIX)
    else:
        response = Response(body, mimetype=mimetype)
        response.set_etag(etag)
    return _revalidated(response)


def _revalidated(response: Response) -> Response:
    # Revalidate every time (the data may have changed), and never from a shared cache.
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Vary"] = "Accept-Encoding, Authorization, Cookie"
    return response


def cached_fragment(key: Hashable, build: Callable[[], str]) -> str:
    """A piece of a page stored under `key` (rendered by `build()` on a miss). The key must
    name everything the piece shows, language included; call only after the access check."""
    return current_app.extensions[EXTENSION].get_or_build(key, build)


def init_app(app: Flask) -> None:
    config = flautim_config(app)
    app.extensions[EXTENSION] = BodyCache(config.RESPONSE_CACHE_MB * 1024 * 1024)
