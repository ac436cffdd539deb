"""The few HTTP pieces the gateway modules need: a parsed request, a response, and JSON helpers.

The server is a plain ASGI app (no framework per request, for speed); these classes are what it hands to
and takes back from each gateway module.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson


class Request:
    """One HTTP request, body already read. `path` is decoded; `raw_path` is the path exactly as sent."""

    __slots__ = ("_query", "body", "headers", "method", "path", "query_string", "raw_path")

    def __init__(self, method: str, path: str, raw_path: bytes, query_string: bytes,
                 headers: dict[str, str], body: bytes):
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query_string = query_string
        self.headers = headers  # lower-cased names; a repeated header keeps its last value
        self.body = body
        self._query: dict[str, list[str]] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters, each a list of values in the order sent (like Go's url.Values)."""
        if self._query is None:
            self._query = parse_qs(self.query_string.decode("latin-1"), keep_blank_values=True)
        return self._query

    def query_value(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body parsed as JSON; `ValueError` when it is not JSON."""
        return orjson.loads(self.body)


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, status: int, body: bytes, content_type: str = "application/json",
                 headers: tuple[tuple[str, str], ...] = ()):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers


def json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, orjson.dumps(payload), "application/json", headers)


def text_response(status: int, text: str) -> Response:
    return Response(status, text.encode("utf-8"), "text/plain; charset=utf-8")


def is_http_url(value: object) -> bool:
    """An absolute http or https URL with a host (what every document means by "valid URL")."""
    if not isinstance(value, str):
        return False
    for scheme in ("http://", "https://"):
        if value.startswith(scheme):
            rest = value[len(scheme):]
            return bool(rest) and not rest.startswith(("/", "?", "#")) and " " not in value
    return False
