"""The web app inside `blast demo`: uvicorn in a thread on loopback, with a throwaway admin login made per run."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time

DEMO_ADMIN_USER = "demo"
STARTUP_TIMEOUT_SECONDS = 30.0


def bind_port(preferred: int, host: str = "127.0.0.1") -> socket.socket:
    """A listening-ready socket on `preferred` when nothing is there (0: any), else on a port the system picks.
    Bound before the server thread starts, so the address printed is the address served."""
    bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        bound.bind((host, preferred))
    except OSError:
        bound.bind((host, 0))
    return bound


def throwaway_login() -> tuple[str, str]:
    """Set BLAST_ADMIN_USER / BLAST_ADMIN_PASSWORD for this process to a fresh login; returns (user, password).
    The caller resets the cached settings."""
    password = secrets.token_urlsafe(12)
    os.environ["BLAST_ADMIN_USER"] = DEMO_ADMIN_USER
    os.environ["BLAST_ADMIN_PASSWORD"] = password
    return DEMO_ADMIN_USER, password


class WebAppThread:
    """`with WebAppThread(port=8000) as web: web.url` serves the web app until the block ends."""

    def __init__(self, *, port: int = 8000, host: str = "127.0.0.1", app=None):
        self.host = host
        self._socket = bind_port(port, host)
        self.port = self._socket.getsockname()[1]
        self._app = app
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> WebAppThread:
        import uvicorn

        from campaigns.web.app import create_app

        config = uvicorn.Config(self._app or create_app(), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="blast-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the web app did not start on {self.url}")
            time.sleep(0.05)
        return self

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __exit__(self, *exc_info) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()
