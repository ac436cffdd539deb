"""Dispatch benchmark: prints figures, asserts nothing.

  engine ceiling   sandbox without cap or latency, 2 worker processes: messages/s end to end and the
                   engine's CPU milliseconds per message (workers + beat, read from /proc)
  rate accuracy    caps of 20, 80 and 250 msg/s, 4 worker processes, 100 ms gateway latency:
                   achieved/cap, most messages in any one second/cap, throttling answers; side by side
                   with plain Celery `rate_limit` on a task, 4 processes (what a user would write instead)
  launch           seconds from `blast launch` to the first accepted message, and the broker's Redis
                   memory while a large campaign runs

Needs the local Postgres and Redis.
Usage: python bench/dispatch.py [--only ceiling|rate|launch] [--caps 20,80,250] [--seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench import private_redis, scratch_database  # noqa: E402
from campaigns import lifecycle, tallies  # noqa: E402
from campaigns.db import migrate  # noqa: E402
from campaigns.errors import Conflict  # noqa: E402
from campaigns.settings import reset_settings  # noqa: E402
from tests.support.engine import write_config, write_contacts  # noqa: E402
from workers.app import app, configure  # noqa: E402
from workers.providers import registry  # noqa: E402
from workers.sandbox.harness import DEFAULT_CREDENTIALS, SandboxProcess  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc (seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


class Environment:
    """A fresh Postgres database, a Redis db, a Blast home; worker and beat subprocesses."""

    def __init__(self, sandbox: SandboxProcess, redis_db: int = 9):
        self.sandbox = sandbox
        self.home = Path(tempfile.mkdtemp(prefix="blast-bench-"))
        self.redis_url = f"{private_redis.base_url()}/{redis_db}"
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Environment:
        self.database_url = scratch_database.create()
        redis.Redis.from_url(self.redis_url).flushdb()
        self.env = {
            "BLAST_DATABASE_URL": self.database_url, "BLAST_BROKER_URL": self.redis_url,
            "BLAST_REDIS_URL": self.redis_url, "BLAST_HOME": str(self.home),
            "BLAST_CONFIG": str(self.home / "blast.toml"),
        }
        os.environ.update(self.env)
        reset_settings()
        configure(app)
        migrate()
        return self

    def accounts(self, accounts: dict) -> None:
        write_config(self.home / "blast.toml", self.sandbox, accounts)
        reset_settings()

    def start(self, *args: str, raw: bool = False) -> subprocess.Popen:
        """`blast ARGS...` (or, `raw`, the command ARGS) with the environment's settings."""
        command = list(args) if raw else [sys.executable, "-m", "campaigns.cli", *args]
        process = subprocess.Popen(command, cwd=ROOT,
                                   env={**os.environ, **self.env}, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(process)
        return process

    def workers(self, count: int, concurrency: int) -> list[subprocess.Popen]:
        started = [self.start("worker", "-c", str(concurrency), "-l", "ERROR", "-n",
                              f"bench{i}-{uuid.uuid4().hex[:4]}@%h") for i in range(count)]
        self.start("beat", "-l", "ERROR")
        time.sleep(4)  # let them import and connect before the clock starts
        return started

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    def __exit__(self, *exc_info) -> None:
        self.stop()
        scratch_database.drop(self.database_url)
        shutil.rmtree(self.home, ignore_errors=True)


# Each campaign of a run reaches numbers of its own: the same people again seconds later would be held back by
# the spacing per recipient (BLAST_PAIR_INTERVAL_SECONDS), which is the product working, not the engine's speed.
_first_number = itertools.count(0, 1_000_000)


def content(provider: str, account: str) -> tuple[str, dict | None]:
    """(template, options) of a campaign on `provider`: Meta's Cloud API sends only an approved template to a
    recipient outside the 24-hour window (the sandbox approves appointment_reminder; its two parameters are both
    filled from the name column)."""
    if provider != "metacloud":
        return "Hello {{ name }}", None
    from campaigns import approved_templates
    from campaigns.db import get_engine
    from campaigns.settings import get_account

    return approved_templates.for_launch(get_engine(), get_account(account), "appointment_reminder", "en_US",
                                         ["name", "name"])


def run_campaign(env: Environment, account: str, count: int, *, timeout: float = 600,
                 provider: str = "socnet") -> tuple[int, float]:
    write_contacts(env.home / "contacts.csv", count, start=next(_first_number))
    template, options = content(provider, account)
    started = time.monotonic()
    campaign_id, _ = lifecycle.launch(env.home / "contacts.csv", account_name=account, template=template,
                                      options=options)
    while tallies.campaign_report(campaign_id)["status"] != "finished":
        if time.monotonic() - started > timeout:
            raise SystemExit(f"campaign {campaign_id} did not finish in {timeout}s: "
                             f"{tallies.campaign_report(campaign_id)}")
        time.sleep(0.05)
    return campaign_id, time.monotonic() - started


def account_stats(sandbox, provider: str) -> dict:
    key = DEFAULT_CREDENTIALS[provider]["key"]
    return sandbox.stats(provider=provider, key=key)["accounts"].get(f"{provider}:{key}", {})


def ceiling(sandbox, *, count: int) -> None:
    print(f"\n== engine ceiling: {count} messages, sandbox without cap or latency, 2 worker processes")
    for provider in registry.providers():
        sandbox.reset(all=True)
        with Environment(sandbox) as env:
            env.accounts({"bench": {"provider": provider, "rate": 10000}})
            workers = env.workers(2, concurrency=8)
            engine_pids = [p.pid for p in env.processes]
            before = sum(cpu_seconds(pid) for pid in engine_pids)
            _, seconds = run_campaign(env, "bench", count, provider=provider)
            after = sum(cpu_seconds(pid) for pid in engine_pids)
            stats = account_stats(sandbox, provider)
            del workers
            print(f"{provider:>8}: {count / seconds:8.0f} msg/s end to end ({seconds:.1f} s), "
                  f"{(after - before) * 1000 / count:.2f} ms CPU/message (workers + beat), "
                  f"accepted {stats.get('accepted')}, duplicates {stats.get('duplicates')}")


def submitted_span(env: Environment, campaign_id: int) -> tuple[int, float]:
    """How many of the campaign's messages the gateway accepted, and the seconds from the first answer to the last.
    The answers' own times (attempt.at, taken as each call returned), not the messages' submitted_at: that is when
    the send task recorded its batch, later for the first batch (its connections are new) than for the others,
    which made a short run look faster than its cap."""
    engine = create_engine(env.database_url)
    with engine.connect() as connection:
        count, first, last = connection.execute(text(
            "SELECT count(*), min(attempt.at), max(attempt.at) FROM attempt JOIN message ON message.id = "
            "attempt.message_id WHERE message.campaign_id = :c AND attempt.outcome = 'accepted'"),
            {"c": campaign_id}).one()
    engine.dispose()
    return count, (last - first).total_seconds()


class MarginWatch:
    """Reads, every 0.2 s while open, the margin the account's last booking added to its window (the Redis
    limiter's hash): what the workers measured of their own lateness and the gateway's answer times."""

    def __init__(self, redis_url: str, account: str) -> None:
        from workers.rate_limits import RedisBackend

        self.client = redis.Redis.from_url(redis_url)
        self.key = RedisBackend.from_url(redis_url).keys(account)[0]
        self.seen: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.stop.wait(0.2):
            value = self.client.hget(self.key, "margin")
            if value is not None:
                self.seen.append(float(value))

    def __enter__(self) -> MarginWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def summary(self) -> str:
        if not self.seen:
            return "(none seen)"
        seen = sorted(self.seen)
        return (f"{seen[0] * 1000:.1f} / {seen[len(seen) // 2] * 1000:.1f} / {seen[-1] * 1000:.1f} ms "
                "(least / median / most)")


def rate_accuracy(sandbox, *, caps: tuple[int, ...], seconds: float) -> None:
    print(f"\n== rate accuracy: 4 worker processes, 100 ms gateway latency, ~{seconds:.0f} s per cap; "
          "the sandbox enforces the cap (over it: Socnet's 503)")
    key = DEFAULT_CREDENTIALS["socnet"]["key"]
    for cap in caps:
        count = int(cap * seconds)
        sandbox.reset(all=True)
        sandbox.knobs("socnet", key, latency_ms=100, rate_cap=cap)
        with Environment(sandbox) as env:
            env.accounts({"bench": {"provider": "socnet", "rate": cap}})
            env.workers(4, concurrency=max(4, cap // 20 + 4))
            with MarginWatch(env.redis_url, "bench") as margins:
                campaign_id, _ = run_campaign(env, "bench", count)
            sent, span = submitted_span(env, campaign_id)
            stats = account_stats(sandbox, "socnet")
        achieved = (sent - 1) / span if span else float("nan")
        print(f"  blast  cap {cap:>4}/s: achieved/cap {achieved / cap:.3f}, "
              f"peak in any second/cap {stats.get('peak_per_second', 0) / cap:.2f}, "
              f"throttling answers {stats.get('rejected', {}).get('rate_cap', 0)}, "
              f"duplicates {stats.get('duplicates', 0)}; margin booked {margins.summary()}")
        plain_celery(sandbox, cap=cap, count=count)


def plain_celery(sandbox, *, cap: int, count: int) -> None:
    key = DEFAULT_CREDENTIALS["socnet"]["key"]
    sandbox.reset(all=True)
    sandbox.knobs("socnet", key, latency_ms=100, rate_cap=cap)
    broker = f"{private_redis.base_url()}/10"
    redis.Redis.from_url(broker).flushdb()
    env = {**os.environ, "PLAIN_BROKER_URL": broker, "PLAIN_RATE": str(cap), "PYTHONPATH": str(ROOT / "bench")}
    workers = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "plain_celery", "worker", "--pool", "threads",
                                 "-c", str(max(4, cap // 20 + 4)), "-l", "ERROR", "-n", f"plain{i}@%h"],
                                cwd=ROOT / "bench", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i in range(4)]
    time.sleep(4)
    from plain_celery import send

    send.app.conf.broker_url = broker
    send.app._pool = None  # Blast's configure() reset kombu's shared pools under this app
    send.app.amqp._producer_pool = None
    url = sandbox.base_url("socnet") + "/projects/bulk/whatsapp/api.php"
    started = time.monotonic()
    for i in range(count):
        send.delay(url, key, f"25677{i:07d}")
    while True:
        stats = account_stats(sandbox, "socnet")
        done = stats.get("accepted", 0) + sum(stats.get("rejected", {}).values())
        if done >= count or time.monotonic() - started > 300:
            break
        time.sleep(0.1)
    seconds = time.monotonic() - started
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=30)
    print(f"  celery cap {cap:>4}/s: sent {count / seconds / cap:.2f} x cap, accepted {stats.get('accepted', 0)}, "
          f"peak accepted in any second/cap {stats.get('peak_per_second', 0) / cap:.2f}, "
          f"throttling answers {stats.get('rejected', {}).get('rate_cap', 0)}")


def launch_latency(sandbox, *, contacts: int, big: int) -> None:
    print(f"\n== launch: {contacts} contacts, 2 workers; then broker memory during a {big:,}-recipient campaign")
    sandbox.reset(all=True)
    with Environment(sandbox) as env:
        env.accounts({"bench": {"provider": "socnet", "rate": 2000}})
        env.workers(2, concurrency=8)
        write_contacts(env.home / "contacts.csv", contacts)
        started = time.monotonic()
        lifecycle.launch(env.home / "contacts.csv", account_name="bench", template="Hello {{ name }}")
        while account_stats(sandbox, "socnet").get("accepted", 0) == 0:
            time.sleep(0.005)
        print(f"  launch -> first accepted message: {time.monotonic() - started:.2f} s (includes ingest)")
        write_contacts(env.home / "big.csv", big, start=contacts)
        broker = redis.Redis.from_url(env.redis_url)
        ingest_started = time.monotonic()
        campaign_id, _ = lifecycle.launch(env.home / "big.csv", account_name="bench", template="Hello {{ name }}")
        print(f"  {big:,} recipients ingested and launched in {time.monotonic() - ingest_started:.1f} s")
        samples = []
        for _ in range(20):
            samples.append(broker.info("memory")["used_memory"] / 1e6)
            time.sleep(1)
        sent = account_stats(sandbox, "socnet").get("accepted", 0)
        with contextlib.suppress(Conflict):  # a --quick campaign may have finished within the 20 s
            lifecycle.cancel(campaign_id)
        print(f"  broker Redis memory over 20 s of sending ({sent:,} accepted): min {min(samples):.1f} MB, "
              f"max {max(samples):.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["ceiling", "rate", "launch"])
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke test")
    parser.add_argument("--caps", default="20,80,250", help="the caps of the rate runs (msg/s, comma-separated)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long each rate run sends (s; a worker books the whole safety margin until it has "
                             "measured 32 of its own calls, 6 s of a 10 s run at cap 20)")
    args = parser.parse_args()
    with SandboxProcess() as sandbox:
        if args.only in (None, "ceiling"):
            ceiling(sandbox, count=3000 if args.quick else 20000)
        if args.only in (None, "rate"):
            caps = (20, 80) if args.quick else tuple(int(cap) for cap in args.caps.split(","))
            rate_accuracy(sandbox, caps=caps, seconds=5 if args.quick else args.seconds)
        if args.only in (None, "launch"):
            launch_latency(sandbox, contacts=1000, big=20_000 if args.quick else 1_000_000)


if __name__ == "__main__":
    main()
