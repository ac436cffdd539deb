"""Helpers for the gateway-client tests: sandbox accounts, the sandbox in a subprocess, a receiver for
callbacks and webhooks, and canned gateway answers."""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from campaigns.settings import AccountConfig
from tests.engine import wait_until
from workers.providers.base import HttpAnswer
from workers.sandbox.harness import die_with_parent, free_port

# The sandbox's built-in accounts (the sandbox contract).
CREDENTIALS: dict[str, dict[str, str]] = {
    "socnet": {"api_key": "sandbox-socnet-key-0123456789abc"},
    "smsglobal": {"api_key": "sandbox-smsglobal-key", "api_secret": "sandbox-smsglobal-secret"},
    "devino": {"api_key": "sandbox-devino-key", "sender": "Blast"},
    "httpapi": {"token": "62b32c76758e0afb0d390793"},
}
KEY_FIELD = {"socnet": "api_key", "smsglobal": "api_key", "devino": "api_key", "httpapi": "token"}


def account(provider: str, base_url: str = "http://127.0.0.1:9", **overrides: Any) -> AccountConfig:
    """A gateway account with the sandbox's credentials unless overridden."""
    values: dict[str, Any] = {"name": f"test-{provider}", "provider": provider, "base_url": base_url,
                              "rate": 50, **CREDENTIALS[provider]}
    values.update(overrides)
    return AccountConfig(**values)


def answer(status: int, text: str, headers: dict[str, str] | None = None) -> HttpAnswer:
    """A gateway's answer as the client sees it: JSON parsed when it parses, else the text."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return HttpAnswer(status=status, headers=headers or {}, body=body, text=text)


class GatewaySandbox:
    """`blast sandbox --port P` in a subprocess, and its control API."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.control = requests.Session()

    def __enter__(self) -> GatewaySandbox:
        blast = Path(sys.executable).with_name("blast")
        command = [str(blast)] if blast.exists() else [shutil.which("blast") or "blast"]
        self.log = tempfile.TemporaryFile()  # not a pipe: a chatty sandbox must never block on it
        self.process = subprocess.Popen([*command, "sandbox", "--port", str(self.port)],
                                        stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        wait_until(self._answers, timeout=30, interval=0.1, message="the sandbox to answer")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            self.log.seek(0)
            raise AssertionError(f"the sandbox exited: {self.log.read().decode(errors='replace')[-2000:]}")
        try:
            return self.control.get(f"{self.root}/_sandbox/stats", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def __exit__(self, *exc) -> None:
        self.control.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def base_url(self, provider: str) -> str:
        return f"{self.root}/{provider}"

    def account(self, provider: str, **overrides: Any) -> AccountConfig:
        return account(provider, self.base_url(provider), **overrides)

    def key(self, provider: str) -> str:
        return CREDENTIALS[provider][KEY_FIELD[provider]]

    def _post(self, path: str, body: dict) -> Any:
        response = self.control.post(f"{self.root}/_sandbox/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self, *, all: bool = True) -> None:
        self._post("reset", {"all": all})

    def knobs(self, provider: str, **knobs: Any) -> None:
        self._post("knobs", {"provider": provider, "key": self.key(provider), **knobs})

    def inbound(self, provider: str, sender: str, text: str) -> None:
        self._post("inbound", {"provider": provider, "key": self.key(provider), "from": sender, "text": text})

    def stats(self, provider: str) -> dict:
        key = self.key(provider)
        response = self.control.get(f"{self.root}/_sandbox/stats", params={"provider": provider, "key": key},
                                    timeout=10)
        response.raise_for_status()
        return response.json()["accounts"].get(f"{provider}:{key}", {})


class HookReceiver:
    """A tiny HTTP server standing in for the web app: records every POST (path, content type, body)
    and answers 200."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[str, str, bytes]] = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.put((self.path, self.headers.get("Content-Type", ""), self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def collect(self, parse, predicate, timeout: float = 10.0) -> list:
        """Parse every body received (parse(content_type, body) -> list) until `predicate(items)` holds."""
        items: list = []
        deadline = time.monotonic() + timeout
        while not predicate(items):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for callbacks; got {items!r}")
            try:
                _path, content_type, body = self.received.get(timeout=remaining)
            except queue.Empty:
                continue
            items.extend(parse(content_type, body))
        return items


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
