"""Gateways that misbehave, for the gateway-client tests: canned answers, a gateway that hangs and one
that crashes after reading the request."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

from workers.providers.base import HttpAnswer


def answer(status: int, text: str, headers: dict[str, str] | None = None) -> HttpAnswer:
    """A gateway's answer as the client sees it: JSON parsed when it parses, else the text."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return HttpAnswer(status=status, headers=headers or {}, body=body, text=text)


class SilentServer:
    """Accepts connections and never answers: a gateway that hangs."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc) -> None:
        self.socket.close()


class DroppingServer(SilentServer):
    """Reads each request whole, then closes the connection without a word: a gateway that crashed after
    taking the message. `requests_read` counts the requests it read."""

    def __init__(self) -> None:
        super().__init__()
        self.requests_read = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = connection.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    continue
                self.requests_read += 1
