"""One receiver for whatever Blast or the sandbox POSTs out: the gateways' callbacks, the web app's
webhooks."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """An HTTP server on loopback that records every POST (path, headers, content type, raw and JSON
    body) and answers `statuses` in turn (then 200): what a client's webhook endpoint would be."""

    def __init__(self, statuses: list[int] | None = None):
        self.posts: list[dict] = []
        self.statuses = list(statuses or [])
        self.hold: threading.Event | None = None  # when set to an Event: each answer waits for it
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._changed:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append({"path": self.path, "headers": dict(self.headers),
                                           "content_type": self.headers.get("Content-Type", ""), "raw": raw,
                                           "body": _json_or_none(raw), "answered": status,
                                           "arrived": time.monotonic()})
                    receiver._changed.notify_all()
                if receiver.hold is not None:
                    receiver.hold.wait(timeout=60)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait_for(self, predicate, *, timeout: float = 15.0, what: str = "a callback"):
        """Block until `predicate(posts)` is truthy (woken by each POST); return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate(self.posts)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; got {self.posts}")
                self._changed.wait(left)

    def collect(self, parse, predicate, *, timeout: float = 10.0) -> list:
        """The items `parse(content_type, raw body) -> list` finds in every POST so far, once
        `predicate(items)` holds."""
        def parsed(posts):
            items = [item for post in posts for item in parse(post["content_type"], post["raw"])]
            return [items] if predicate(items) else None

        return self.wait_for(parsed, timeout=timeout, what="callbacks")[0]

    def bodies(self, path: str | None = None) -> list:
        with self._changed:
            return [p["body"] for p in self.posts if path is None or p["path"] == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()


def _json_or_none(raw: bytes):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
