"""Client-side helper for tests, the demo and benchmarks: run `blast sandbox` as a subprocess and drive its
control API.

    with SandboxProcess() as sandbox:
        sandbox.knobs("socnet", DEFAULT_CREDENTIALS["socnet"]["key"], rate_cap=20)
        base = sandbox.base_url("socnet")          # "http://127.0.0.1:PORT/socnet"
        ...
        sandbox.stats(provider="socnet")["accounts"]["socnet:<key>"]["accepted"]
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from workers.sandbox.gateways import builtin_accounts, providers

# The built-in sandbox accounts: provider -> {"key", and "secret" / "sender" where the gateway has one}.
DEFAULT_CREDENTIALS: dict[str, dict[str, str]] = {
    provider: {name: value for name, value in dataclasses.asdict(account).items() if value}
    for provider, account in builtin_accounts().items()
}


class SandboxError(RuntimeError):
    """The sandbox did not start, or its control API refused a call (the message says why)."""


def die_with_parent() -> None:
    """In the child, before exec: on Linux, ask for SIGTERM when the process that started us dies, so a
    killed test run leaves no sandbox behind. Elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class SandboxProcess:
    """`blast sandbox --port <free>` in a subprocess, started on enter and stopped on exit.

    The knob arguments are the `blast sandbox` flags: defaults for every account (None = the sandbox's own).
    """

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1", latency_ms: float | None = None,
                 rate_cap: float | None = None, quota: int | None = None, fail_fraction: float | None = None,
                 startup_timeout: float = 30.0, log_path: Path | None = None):
        self.host = host
        self.port = port
        self.flags = {"--latency-ms": latency_ms, "--rate-cap": rate_cap, "--quota": quota,
                      "--fail-fraction": fail_fraction}
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._session = requests.Session()
        self._session.trust_env = False  # never through a proxy: the sandbox is on loopback
        self._lock = threading.Lock()
        self._own_log = False

    # ------------------------------------------------------------------ process

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise SandboxError("the sandbox is not running")
        return self.process.pid

    def base_url(self, provider: str) -> str:
        """An account's base_url for `provider`, e.g. http://127.0.0.1:8900/devino."""
        if provider not in providers():
            raise ValueError(f"unknown provider {provider!r}; one of {', '.join(providers())}")
        return f"{self.url}/{provider}"

    def start(self) -> SandboxProcess:
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="blast-sandbox-", suffix=".log")
            os.close(handle)
            self.log_path, self._own_log = Path(name), True
        fixed_port = self.port is not None
        for _ in range(1 if fixed_port else 5):
            if not fixed_port:
                self.port = free_port(self.host)
            if self._launch():
                return self
            if fixed_port:
                break
        raise SandboxError(f"the sandbox did not start; its log ends with:\n{self._log_tail()}")

    def _launch(self) -> bool:
        command = [sys.executable, "-m", "campaigns.cli", "sandbox", "--host", self.host,
                   "--port", str(self.port)]
        for flag, value in self.flags.items():
            if value is not None:
                command += [flag, str(value)]
        assert self.log_path is not None
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=die_with_parent)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # exited: most likely the port was taken meanwhile
            with contextlib.suppress(requests.RequestException):
                if self._session.get(f"{self.url}/_sandbox/health", timeout=1.0).status_code == 200:
                    return True
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:] if self.log_path else ""
        except OSError:
            return ""

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self._session.close()
        if self._own_log and self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    # ------------------------------------------------------------------ control API

    def _call(self, method: str, path: str, *, json: Any = None, params: dict | None = None) -> dict:
        with self._lock:
            answer = self._session.request(method, f"{self.url}/_sandbox/{path}", json=json, params=params,
                                           timeout=30)
        if answer.status_code != 200:
            try:
                detail = answer.json().get("error", answer.text)
            except ValueError:
                detail = answer.text
            raise SandboxError(f"sandbox {method} /_sandbox/{path}: {answer.status_code} {detail}")
        return answer.json()

    def _key(self, provider: str, key: str | None) -> str:
        return key if key is not None else DEFAULT_CREDENTIALS[provider]["key"]

    def knobs(self, provider: str, key: str | None = None, **knobs: Any) -> dict:
        """Change knobs of one account live (key None = the built-in account); returns all its knobs."""
        body = {"provider": provider, "key": self._key(provider, key), **knobs}
        return self._call("POST", "knobs", json=body)

    def stats(self, provider: str | None = None, key: str | None = None) -> dict:
        """{"accounts": {"<provider>:<key>": {accepted, accepted_per_recipient, duplicates, rejected,
        peak_per_second, requests}}}, for every account or the ones chosen."""
        params = {name: value for name, value in (("provider", provider), ("key", key)) if value is not None}
        return self._call("GET", "stats", params=params)

    def account_stats(self, provider: str, key: str | None = None) -> dict:
        """The stats of one account (the built-in one when key is None)."""
        key = self._key(provider, key)
        return self.stats(provider, key)["accounts"][f"{provider}:{key}"]

    def reset(self, all: bool = False) -> dict:
        """Forget messages and stats; `all=True` also restores the built-in accounts and default knobs."""
        return self._call("POST", "reset", json={"all": all})

    def inbound(self, provider: str, key: str | None, from_: str, text: str) -> dict:
        """Inject an inbound message from `from_`; returns {"id", "pushed"}."""
        return self._call("POST", "inbound", json={"provider": provider, "key": self._key(provider, key),
                                                   "from": from_, "text": text})

    def create_account(self, provider: str, key: str, *, secret: str | None = None,
                       sender: str | None = None) -> dict:
        """Create or replace an account (it starts with the default knobs)."""
        body = {"provider": provider, "key": key}
        if secret is not None:
            body["secret"] = secret
        if sender is not None:
            body["sender"] = sender
        return self._call("POST", "accounts", json=body)

    def callbacks(self) -> dict:
        """The callback sender's counts: delivered, failed_attempts, abandoned, queued, waiting_retries."""
        return self._call("GET", "callbacks")
