"""Helpers for tests that run the real engine: contact files, blast.toml for sandbox accounts, Blast
processes (worker, beat) as subprocesses, and waiting for a state of the database."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import select

from campaigns import tallies
from campaigns.db import engine_for
from campaigns.models import Attempt, Message
from campaigns.settings import reset_settings
from tests.support import services
from tests.support.databases import truncate_all
from tests.support.sandbox import credentials
from tests.support.waiting import wait_until
from workers.app import app, configure
from workers.sandbox.harness import die_with_parent

ROOT = Path(__file__).resolve().parents[2]


# Ugandan mobile ranges, 10,000,000 numbers each: the `start`-th number onwards stays valid past the first range
# (a benchmark that runs many campaigns gives each its own numbers)
MOBILE_PREFIXES = ("77", "78", "76", "70", "75", "74", "71", "79")


def write_contacts(path: Path, count: int, *, start: int = 0) -> list[str]:
    """A CSV of `count` valid Ugandan mobiles, the `start`-th onwards (up to 80,000,000, MOBILE_PREFIXES);
    returns their E.164 forms."""
    if start + count > 10_000_000 * len(MOBILE_PREFIXES):
        raise ValueError(f"only {10_000_000 * len(MOBILE_PREFIXES):,} numbers: {start:,} + {count:,} is past them")
    numbers = [f"+256{MOBILE_PREFIXES[index // 10_000_000]}{index % 10_000_000:07d}"
               for index in range(start, start + count)]
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["name", "phone"])
        for i, number in enumerate(numbers):
            writer.writerow([f"Person {i}", number])
    return numbers


def write_config(path: Path, sandbox, accounts: dict[str, dict]) -> None:
    """`accounts`: name -> {"provider": ..., "rate": ..., other keys}; credentials default to the sandbox's."""
    lines = []
    for name, spec in accounts.items():
        provider = spec["provider"]
        values = {"provider": provider, "base_url": sandbox.base_url(provider), **credentials(provider),
                  **{k: v for k, v in spec.items() if k != "provider"}}
        lines.append(f"[accounts.{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def campaign_status(campaign_id: int) -> dict:
    return tallies.campaign_report(campaign_id)


def wait_for_status(campaign_id: int, statuses: tuple[str, ...], *, timeout: float) -> dict:
    def reached():
        report = tallies.campaign_report(campaign_id)
        return report if report["status"] in statuses else None

    return wait_until(reached, timeout=timeout, message=f"campaign {campaign_id} to be {'/'.join(statuses)}")


def attempts_per_message(database_url: str, campaign_id: int) -> dict[int, int]:
    engine = engine_for(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(Message.id, Attempt.id).join(Attempt, Attempt.message_id == Message.id, isouter=True)
            .where(Message.campaign_id == campaign_id)
        ).all()
    counts: dict[int, int] = {}
    for message_id, attempt_id in rows:
        counts[message_id] = counts.get(message_id, 0) + (1 if attempt_id is not None else 0)
    return counts


def process_env(*, database_url: str, redis_url: str, home: Path, config: Path, limiter_url: str | None = None,
                **settings: object) -> dict[str, str]:
    """The environment of Blast processes: a database, one Redis database as broker and (unless
    `limiter_url`) limiter, a home folder and a blast.toml; `settings` are further BLAST_* settings by
    lower-case name (`reconcile_every_seconds=1` is BLAST_RECONCILE_EVERY_SECONDS=1)."""
    env = {"BLAST_DATABASE_URL": database_url, "BLAST_BROKER_URL": redis_url,
           "BLAST_REDIS_URL": limiter_url or redis_url, "BLAST_HOME": str(home), "BLAST_CONFIG": str(config)}
    env.update({f"BLAST_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def fresh_env(folder: Path, database_url: str, redis_db: int, **settings: object) -> dict[str, str]:
    """`process_env` on the test Postgres database and the local Redis database `redis_db` (broker and
    limiter), both emptied, with the home folder and blast.toml in `folder`."""
    services.require("redis")
    broker = f"{services.REDIS_URL}/{redis_db}"
    truncate_all(database_url)
    redis.Redis.from_url(broker).flushdb()
    return process_env(database_url=database_url, redis_url=broker, home=folder / "blast-home",
                       config=folder / "blast.toml", **settings)


@contextlib.contextmanager
def engine_processes(env: dict[str, str], log_dir: Path, *, unset: tuple[str, ...] = (),
                     here: dict[str, str] | None = None) -> Iterator[BlastProcesses]:
    """Blast processes with `env` (and without the variables in `unset`), stopped at the end. This test
    process takes the same settings meanwhile (re-read, the Celery app configured), with `here` instead
    where it must see something the processes do not (the database without a proxy in between)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in {**env, **(here or {})}.items():
                patch.setenv(key, value)
            for key in unset:
                patch.delenv(key, raising=False)
            reset_settings()
            configure(app)
            with BlastProcesses(env, log_dir) as processes:  # os.environ as patched: `unset` stays unset
                processes.engine = engine_for((here or env)["BLAST_DATABASE_URL"])
                yield processes
    finally:
        reset_settings()
        configure(app)


class BlastProcesses:
    """`blast worker` / `blast beat` subprocesses with a given environment; all stopped on exit."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []
        self.started: dict[subprocess.Popen, tuple[tuple[str, ...], str]] = {}  # each process's arguments, name

    def start(self, *args: str, name: str) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")  # a process started again writes on after the first
        process = subprocess.Popen([sys.executable, "-m", "campaigns.cli", *args], env=self.env, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=die_with_parent)  # a killed test run leaves no process behind
        self.processes.append(process)
        self.started[process] = (args, name)
        return process

    def restart_exited(self) -> list[str]:
        """Start again, with the same arguments, each process that exited by itself (not one `kill` stopped),
        as the deployed shape's `restart: unless-stopped` does (docker-compose.yml); their names."""
        names = []
        for process in [process for process in self.processes if process.poll() is not None]:
            self.processes.remove(process)
            args, name = self.started.pop(process)
            self.start(*args, name=name)
            names.append(name)
        return names

    def worker(self, name: str, *, concurrency: int = 4) -> subprocess.Popen:
        return self.start("worker", "-c", str(concurrency), "-l", "WARNING", "-n", f"{name}@%h", name=name)

    def beat(self, name: str = "beat") -> subprocess.Popen:
        return self.start("beat", "-l", "WARNING", name=name)

    def web(self, port: int, name: str = "web") -> subprocess.Popen:
        """`blast web` on 127.0.0.1:`port`; the caller waits for it to answer."""
        return self.start("web", "--host", "127.0.0.1", "--port", str(port), name=name)

    def log(self, name: str) -> str:
        """What the process started as `name` has written so far."""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, process: subprocess.Popen, sig=signal.SIGKILL) -> None:
        """Stop the process (SIGKILL: no goodbye); it is no longer one of these processes."""
        os.killpg(process.pid, sig)
        process.wait(timeout=30)
        self.processes.remove(process)

    def wait_until_answering(self, url: str, *, timeout: float = 60) -> None:
        """Wait for `url` to answer 200; fail at once, with the logs, if one of the processes has exited."""
        def answers() -> bool:
            for process in self.processes:
                if process.poll() is not None:
                    raise AssertionError(f"a Blast process exited:\n{self.logs()}")
            try:
                return requests.get(url, timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, timeout=timeout, interval=0.2, message=f"{url} to answer")

    def logs(self, *, tail: int = 3000) -> str:
        """The last `tail` characters of each process's log, for a failure's message."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in self.log_dir.glob("*.log"))

    def __enter__(self) -> BlastProcesses:
        return self

    def __exit__(self, *exc_info) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


class SentTasks:
    """Records the broker's `task-sent` events (task name, publishing process id, time) while open: who
    published which task, e.g. which beat sent a periodic job."""

    def __init__(self, broker_url: str):
        self.broker_url = broker_url
        self.sent: list[tuple[str, int, float]] = []
        self._receiver = None
        self._thread = None

    def published(self, task_name: str) -> list[tuple[int, float]]:
        """(pid, time in epoch seconds) of each `task_name` published so far, oldest first."""
        return [(pid, at) for name, pid, at in list(self.sent) if name == task_name]

    def _on_sent(self, event: dict) -> None:
        self.sent.append((event["name"], event["pid"], event["timestamp"]))

    def _capture(self, ready) -> None:
        from celery.events.receiver import EventReceiver

        from workers.app import app

        class Receiver(EventReceiver):
            def on_consume_ready(self, *args, **kwargs):
                super().on_consume_ready(*args, **kwargs)
                ready.set()

        with app.connection_for_read(self.broker_url) as connection:
            self._receiver = Receiver(connection, handlers={"task-sent": self._on_sent}, app=app)
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> SentTasks:
        import threading

        ready = threading.Event()
        self._thread = threading.Thread(target=self._capture, args=(ready,), name="sent-tasks", daemon=True)
        self._thread.start()
        wait_until(ready.is_set, timeout=10, message="the event receiver to listen")
        return self

    def __exit__(self, *exc_info) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        if self._thread is not None:
            self._thread.join(timeout=10)
