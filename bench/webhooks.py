"""Outbound webhooks benchmark: prints figures, asserts nothing.

Two runs of the same campaign through the sandbox's Socnet (capped at --rate messages/s), side by side: without
any webhook subscription, then with a subscriber (a fast local receiver) to message.status, campaign.started and
campaign.finished, plus a backlog of --backlog events written before the launch, so delivery runs flat out while
the campaign sends. Deployed shape: 2 send workers (send, pace, reports), 1 webhooks worker, beat; Postgres and
Redis.

For each run: the send rate (submitted messages per second), the send workers' CPU per message (workers + beat,
from /proc), and with the subscriber the webhook events delivered per second at the receiver (distinct
webhook-ids over the time from the first to the last), the webhooks worker's CPU per event, and how long after
the campaign finished its last event arrived.

Needs the local Postgres and Redis (BLAST_BENCH_POSTGRES, BLAST_BENCH_REDIS).
Usage: python bench/webhooks.py [--count 20000] [--rate 500] [--backlog 40000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.dispatch import Environment, cpu_seconds, run_campaign, submitted_span  # noqa: E402
from campaigns.db import get_engine  # noqa: E402
from campaigns.webhooks import outbox, subscriptions  # noqa: E402
from workers.sandbox.harness import SandboxProcess  # noqa: E402

# ---------------------------------------------------------------- the receiver (its own process)


def receive(port: int) -> None:
    """A subscriber that takes every POST (204) and counts distinct webhook-ids; GET answers its counts."""
    import uvicorn

    seen: set[bytes] = set()
    times = {"first": None, "last": None, "posts": 0}

    async def app(scope, receive_message, send):
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            body = json.dumps({"ids": len(seen), **times}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        more = True
        while more:
            more = (await receive_message()).get("more_body", False)
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                seen.add(value)
        now = time.time()
        times["first"] = times["first"] or now
        times["last"] = now
        times["posts"] += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, http="httptools",
                loop="uvloop")


class Receiver:
    def __enter__(self) -> Receiver:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, __file__, "--receive", str(self.port)], cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.stats()
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise SystemExit("the receiver did not start")

    def stats(self) -> dict:
        return requests.get(self.url, timeout=5).json()

    def __exit__(self, *exc_info) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# ---------------------------------------------------------------- the runs


def run(sandbox, *, count: int, rate: int, receiver: Receiver | None, backlog: int) -> dict:
    sandbox.reset(all=True)
    with Environment(sandbox, redis_db=11) as env:
        env.accounts({"bench": {"provider": "socnet", "rate": rate}})
        engine = get_engine()
        if receiver is not None:
            subscription_id, _ = subscriptions.add(
                engine, receiver.url + f"/run-{time.monotonic_ns()}",
                "message.status,campaign.started,campaign.finished")
            for start in range(0, backlog, 5000):
                with engine.begin() as connection:
                    outbox.write(connection, "optout.added",
                                 [{"phone": f"+2569{i:08d}"} for i in range(start, min(start + 5000, backlog))],
                                 subscription_ids=[subscription_id])
        senders = [env.start("worker", "-c", "8", "-Q", "send,pace,reports", "-l", "ERROR", "-n", f"send{i}@%h")
                   for i in range(2)]
        hooks = env.start("worker", "-c", "4", "-Q", "webhooks", "-l", "ERROR", "-n", "webhooks@%h")
        beat = env.start("beat", "-l", "ERROR")
        time.sleep(5)  # imports and connections before the clock starts
        sending = [process.pid for process in (*senders, beat)]
        before, hooks_before = sum(map(cpu_seconds, sending)), cpu_seconds(hooks.pid)
        campaign_id, _seconds = run_campaign(env, "bench", count)
        finished_at = time.time()
        send_cpu = sum(map(cpu_seconds, sending)) - before
        sent, span = submitted_span(env, campaign_id)
        result = {"send_rate": (sent - 1) / span, "send_cpu_ms": send_cpu * 1000 / count}
        if receiver is not None:
            expected = backlog + count + 2
            deadline = time.monotonic() + 600
            while (stats := receiver.stats())["ids"] < expected and time.monotonic() < deadline:
                time.sleep(0.2)
            hooks_cpu = cpu_seconds(hooks.pid) - hooks_before
            result.update(events=stats["ids"], expected=expected, posts=stats["posts"],
                          events_per_second=stats["ids"] / (stats["last"] - stats["first"]),
                          hooks_cpu_ms=hooks_cpu * 1000 / max(stats["posts"], 1),
                          lag=stats["last"] - finished_at)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000, help="recipients of the campaign")
    parser.add_argument("--rate", type=int, default=500, help="the account's cap, messages/s")
    parser.add_argument("--backlog", type=int, default=40000, help="events waiting before the launch")
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke test")
    parser.add_argument("--receive", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        receive(args.receive)
        return
    if args.quick:
        args.count, args.backlog = 2000, 4000
    print(f"== a {args.count:,}-recipient campaign, Socnet capped at {args.rate}/s; 2 send workers, 1 webhooks "
          f"worker, beat")
    with SandboxProcess() as sandbox:
        plain = run(sandbox, count=args.count, rate=args.rate, receiver=None, backlog=0)
        with Receiver() as receiver:
            hooked = run(sandbox, count=args.count, rate=args.rate, receiver=receiver, backlog=args.backlog)
    print(f"  {'':<28}{'no subscriber':>16}{'a subscriber':>16}")
    print(f"  {'send rate (msg/s)':<28}{plain['send_rate']:>16.0f}{hooked['send_rate']:>16.0f}")
    print(f"  {'send CPU (ms/message)':<28}{plain['send_cpu_ms']:>16.2f}{hooked['send_cpu_ms']:>16.2f}")
    print(f"  webhook events delivered: {hooked['events']:,} of {hooked['expected']:,} ({hooked['posts']:,} POSTs) "
          f"at {hooked['events_per_second']:,.0f} events/s; webhooks worker {hooked['hooks_cpu_ms']:.2f} ms CPU/POST; "
          f"last event {hooked['lag']:.1f} s after the campaign finished")


if __name__ == "__main__":
    main()
