"""The web's side of the object store: the store its settings name, and downloads.

Downloads stream through the app rather than redirecting to presigned URLs: the view has
already done the tenant check, the store can stay on a private network the browser never
reaches, and no bearer URL that outlives a revoked membership ends up in a browser's
history or a proxy's log. The cost is the bytes passing through a web process, in 1 MiB
pieces (never the whole file in memory).
"""

from __future__ import annotations

from flask import abort, send_file

from flautim.object_store import LocalFolderStore, S3Store, StoredObjectMissing, store_for
from flautim.web import flautim_config


def object_store() -> LocalFolderStore | S3Store:
    return store_for(flautim_config())


def send_stored(key: str, **send_file_options):
    """A response streaming the stored object `key` (send_file's options: download_name,
    mimetype, as_attachment...); 404 when it is gone from the store."""
    store = object_store()
    try:
        if isinstance(store, LocalFolderStore):
            # A file on this disk: send_file adds ranges and conditional requests.
            path = store.path(key)
            if not path.is_file():
                raise StoredObjectMissing(key)
            return send_file(path, **send_file_options)
        stream, size = store.open(key)
    except StoredObjectMissing:
        abort(404)
    response = send_file(stream, **send_file_options)
    response.content_length = size
    return response
