"""A small JSON-over-HTTP client for /api/v1 with bearer authentication (urllib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO

USER_AGENT = "flautim-cli/1"


class ApiClientError(Exception):
    """The server refused a request (status >= 400) or could not be reached (status 0)."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 line: int | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.line = line
        self.hint = hint

    def __str__(self) -> str:
        text = f"HTTP {self.status}: {self.message}" if self.status else self.message
        where = [f"campo {self.field}"] if self.field else []
        if self.line:
            where.append(f"linha {self.line}")
        if where:
            text += f" ({', '.join(where)})"
        if self.hint:
            text += f"\n  dica: {self.hint}"
        return text


@dataclass
class FilePart:
    """A file of a multipart upload."""

    field: str
    filename: str
    stream: BinaryIO


class ApiClient:
    def __init__(self, base_url: str, token: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/api/v1"):
            self.base_url += "/api/v1"
        self.token = token
        self.timeout = timeout

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        url = self.base_url + path
        if query:
            clean = {k: v for k, v in query.items() if v is not None}
            url += "?" + urllib.parse.urlencode(clean)
        return url

    def _send(self, method: str, path: str, *, query=None, body: bytes | None = None,
              content_type: str | None = None):
        request = urllib.request.Request(self.url(path, query), data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise _error_from(exc) from None
        except urllib.error.URLError as exc:
            raise ApiClientError(0, f"não foi possível conectar a {self.base_url}: {exc.reason}") from None

    def get(self, path: str, **query: Any) -> dict:
        with self._send("GET", path, query=query) as response:
            return json.load(response)

    def post_json(self, path: str, payload: dict | None = None) -> dict:
        body = json.dumps(payload or {}).encode("utf-8")
        with self._send("POST", path, body=body, content_type="application/json") as response:
            return json.load(response)

    def post_multipart(self, path: str, fields: dict[str, str], files: list[FilePart]) -> dict:
        body, content_type = encode_multipart(fields, files)
        with self._send("POST", path, body=body, content_type=content_type) as response:
            return json.load(response)

    def download(self, path: str, target: BinaryIO, chunk: int = 1 << 20) -> dict[str, str]:
        """Stream a file into `target`; returns the response headers."""
        with self._send("GET", path) as response:
            while True:
                block = response.read(chunk)
                if not block:
                    break
                target.write(block)
            return dict(response.headers.items())


def encode_multipart(fields: dict[str, str], files: list[FilePart]) -> tuple[bytes, str]:
    """A multipart/form-data body (in memory: uploads are capped by the server anyway)."""
    boundary = "flautim-" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{_quote(name)}\"\r\n\r\n".encode()
        out += value.encode("utf-8") + b"\r\n"
    for part in files:
        out += (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{_quote(part.field)}\"; "
            f"filename=\"{_quote(part.filename)}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += part.stream.read() + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")


def _error_from(exc: urllib.error.HTTPError) -> ApiClientError:
    try:
        error = json.loads(exc.read().decode("utf-8", "replace")).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    return ApiClientError(
        exc.code,
        str(error.get("message") or exc.reason),
        field=error.get("field"),
        line=error.get("line"),
        hint=error.get("hint"),
    )
