"""Outbound webhooks benchmark: prints figures, asserts nothing.

Four runs of the same campaign through the sandbox's Socnet (capped at --rate messages/s), side by side:
  no subscriber      no webhook subscription at all
  delivered after    a subscriber (a fast local receiver) to message.status, campaign.started and
                     campaign.finished, plus --backlog events written before the launch; the webhooks worker starts
                     once the campaign has finished, with no cap on the subscription's rate: the send path's own
                     cost of writing the events, then delivery alone (events/s with nothing else running)
  during, cap        the same, with the webhooks worker delivering while the campaign sends, at the subscription's
                     rate cap (--webhook-rate, by default BLAST_WEBHOOK_RATE_PER_SUBSCRIPTION's default): events/s
                     is what arrived between the launch and the finish, with events still waiting at the finish
                     (else it is the campaign's own pace, marked *)
  during, no cap     the same with no cap (BLAST_WEBHOOK_RATE_PER_SUBSCRIPTION=0): delivery takes what CPU it can
Deployed shape: 2 send workers (send, pace, reports), 1 webhooks worker (at idle priority, as the Procfile runs
it), beat; Postgres and Redis. The receiver runs at idle priority too: it stands for another host.

For each run: the send rate (submitted messages per second), the send workers' CPU per message (workers + beat,
from /proc); with the subscriber, the webhook events delivered per second at the receiver (distinct webhook-ids
over the time from the first to the last), the webhooks worker's CPU per POST, and how long after the campaign
finished its last event arrived. Last, what a state change costs the send path with no subscription, and with one,
the CPU per event written to the outbox (--write-cost prints only that).

With --repeat N the runs are made N times, each round in the other order, and each run's send rate is compared with
the no-subscriber run of its own round: on a small host the send rate at the cap varies from run to run by as much
as delivery changes it (the limiter's margin follows the senders' timing, workers/rate_limits/jitter.py).

Needs the local Postgres (a database of its own: bench/scratch_database.py) and redis-server (a Redis of its
own: bench/private_redis.py).
Usage: python bench/webhooks.py [--count 20000] [--rate 500] [--backlog 100000] [--runs none,during] [--repeat N]
       [--quick] [--write-cost]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.dispatch import CLOCK_TICKS, Environment, cpu_seconds, run_campaign, submitted_span  # noqa: E402
from campaigns.db import get_engine  # noqa: E402
from campaigns.settings import Settings  # noqa: E402
from campaigns.webhooks import outbox, subscriptions  # noqa: E402
from workers.sandbox.harness import SandboxProcess  # noqa: E402

# The receiver stands for a system on another host, whose CPU is not Blast's: it takes only what is left over,
# as the webhooks worker does (blast worker --idle-priority)
RECEIVER_PRIORITY = ("chrt", "--idle", "0")
BACKLOG_TYPE = "optout.added"  # the events written before the launch (the campaign makes none of these)

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
        self.process = subprocess.Popen([*RECEIVER_PRIORITY, sys.executable, __file__, "--receive",
                                         str(self.port)], cwd=ROOT)
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


# ---------------------------------------------------------------- where the machine's CPU goes

GROUPS = (("webhooks worker", "-Q webhooks"), ("send workers", "-Q send"), ("beat", " beat "),
          ("sandbox gateway", " sandbox "), ("receiver", "--receive"), ("postgres", "postgres"),
          ("redis", "redis-server"))


def cpu_by_group() -> dict[str, float]:
    """CPU seconds used so far by every process of the machine, summed by what it is (GROUPS, else "other")."""
    used: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        group = next((name for name, mark in GROUPS if mark in f" {command} "), "other")
        used[group] = used.get(group, 0.0) + sum(int(value) for value in fields[11:13]) / CLOCK_TICKS
    return used


# ---------------------------------------------------------------- the runs


def run(sandbox, *, count: int, rate: int, subscriber: str, backlog: int, webhook_rate: float) -> dict:
    """One campaign; `subscriber`: "none", "after" (events delivered once the campaign has finished: the send
    path's own cost of writing them, then delivery alone, uncapped), "during" (delivered while the campaign
    sends, at most `webhook_rate` events a second) or "uncapped" (during, with no cap)."""
    sandbox.reset(all=True)
    with Environment(sandbox) as env, Receiver() as receiver:
        env.accounts({"bench": {"provider": "socnet", "rate": rate}})
        env.env["BLAST_WEBHOOK_RATE_PER_SUBSCRIPTION"] = str(webhook_rate if subscriber == "during" else 0)
        engine = get_engine()
        if subscriber != "none":
            subscription_id, _ = subscriptions.add(engine, receiver.url,
                                                   "message.status,campaign.started,campaign.finished")
            for start in range(0, backlog, 5000):
                with engine.begin() as connection:
                    outbox.write(connection, BACKLOG_TYPE,
                                 [{"phone": f"+2569{i:08d}"} for i in range(start, min(start + 5000, backlog))],
                                 subscription_ids=[subscription_id])
        senders = [env.start("worker", "-c", "8", "-Q", "send,pace,reports", "-l", "ERROR", "-n", f"send{i}@%h")
                   for i in range(2)]
        beat = env.start("beat", "-l", "ERROR")

        def webhooks_worker():
            return env.start("worker", "--idle-priority", "-c", "4",
                             "-Q", "webhooks", "-l", "ERROR", "-n", "webhooks@%h")

        during = subscriber in ("during", "uncapped")
        hooks = webhooks_worker() if during else None
        time.sleep(5)  # imports and connections before the clock starts
        sending = [process.pid for process in (*senders, beat)]
        before = sum(map(cpu_seconds, sending))
        at_launch, launched_at, cpu_at_launch = receiver.stats()["ids"], time.time(), cpu_by_group()
        campaign_id, _seconds = run_campaign(env, "bench", count)
        at_finish, finished_at, cpu_at_finish = receiver.stats()["ids"], time.time(), cpu_by_group()
        send_cpu = sum(map(cpu_seconds, sending)) - before
        sent, span = submitted_span(env, campaign_id)
        result = {"send_rate": (sent - 1) / span, "send_cpu_ms": send_cpu * 1000 / count,
                  "cores": {group: (cpu_at_finish.get(group, 0.0) - cpu_at_launch.get(group, 0.0))
                            / (finished_at - launched_at) for group in cpu_at_finish}}
        if subscriber == "none":
            return result
        if hooks is None:
            hooks = webhooks_worker()
        expected = backlog + count + 2
        deadline = time.monotonic() + 600
        while (stats := receiver.stats())["ids"] < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        if during:
            # what arrived while the campaign sent; a true rate only if events were still waiting at the finish
            # (else delivery kept up and the campaign's own pace is what was measured)
            events_per_second = (at_finish - at_launch) / (finished_at - launched_at)
            result.update(saturated=at_finish < expected)
        else:
            events_per_second = stats["ids"] / (stats["last"] - stats["first"])
        result.update(events=stats["ids"], expected=expected, posts=stats["posts"],
                      events_per_second=events_per_second,
                      hooks_cpu_ms=cpu_seconds(hooks.pid) * 1000 / max(stats["posts"], 1),
                      lag=stats["last"] - finished_at)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000, help="recipients of the campaign")
    parser.add_argument("--rate", type=int, default=500, help="the account's cap, messages/s")
    parser.add_argument("--backlog", type=int, default=100000, help="events waiting before the launch")
    parser.add_argument("--runs", default="none,after,during,uncapped", help="which of the runs, comma-separated")
    parser.add_argument("--webhook-rate", type=float, default=Settings().webhook_rate_per_subscription,
                        help="the during run's cap, events a second per subscription (default: Blast's)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of the runs, each in the other order; with several, each run's send rate "
                             "against no subscriber's, round by round")
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke test")
    parser.add_argument("--write-cost", action="store_true",
                        help="only the send path's CPU per event written to the outbox, by write size")
    parser.add_argument("--receive", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        receive(args.receive)
        return
    if args.write_cost:
        print_write_cost()
        return
    if args.quick:
        args.count, args.backlog = 2000, 4000
    print(f"== a {args.count:,}-recipient campaign, Socnet capped at {args.rate}/s; 2 send workers, 1 webhooks "
          f"worker, beat; with a subscriber, {args.backlog:,} events wait before the launch")
    rounds = []
    with SandboxProcess() as sandbox:
        for number in range(args.repeat):
            # each round in the other order: a run does not always follow the same other run
            order = args.runs.split(",")[::-1 if number % 2 else 1]
            runs = {subscriber: run(sandbox, count=args.count, rate=args.rate, subscriber=subscriber,
                                    backlog=args.backlog, webhook_rate=args.webhook_rate) for subscriber in order}
            rounds.append({subscriber: runs[subscriber] for subscriber in args.runs.split(",")})
            if args.repeat > 1:
                print(f"  round {number + 1} ({', '.join(order)}): send rate " + ", ".join(
                    f"{name} {result['send_rate']:.1f}" for name, result in rounds[-1].items()), flush=True)
    print_rounds(rounds)
    runs = rounds[-1]
    titles = {"none": "no subscriber", "after": "delivered after", "during": f"during, cap {args.webhook_rate:g}",
              "uncapped": "during, no cap"}
    print(f"  {'':<34}" + "".join(f"{titles[name]:>18}" for name in runs))
    print(f"  {'send rate (msg/s)':<34}" + "".join(f"{r['send_rate']:>18.1f}" for r in runs.values()))
    print(f"  {'send CPU (ms/message, workers+beat)':<34}"
          + "".join(f"{r['send_cpu_ms']:>18.2f}" for r in runs.values()))
    hooked = [r for r in runs.values() if "events" in r]
    print(f"  {'events delivered':<34}{'':>18}" + "".join(f"{r['events']:>11,} of {r['expected']:,}" for r in hooked))
    print(f"  {'events/s at the receiver':<34}{'':>18}" + "".join(
        f"{r['events_per_second']:>17,.0f}{'' if r.get('saturated', True) else '*'}" for r in hooked))
    print(f"  {'webhooks worker CPU (ms/POST)':<34}{'':>18}" + "".join(f"{r['hooks_cpu_ms']:>18.2f}" for r in hooked))
    print(f"  {'last event after the finish (s)':<34}{'':>18}" + "".join(f"{r['lag']:>18.1f}" for r in hooked))
    print(f"  cores busy while the campaign sent (of the machine's {len(os.sched_getaffinity(0))}), by process:")
    for group in [name for name, _mark in GROUPS] + ["other"]:
        print(f"    {group:<32}" + "".join(f"{r['cores'].get(group, 0.0):>18.2f}" for r in runs.values()))
    if not all(r.get("saturated", True) for r in runs.values()):
        print("  * every event had arrived before the campaign finished: delivery kept up with the campaign, and this "
              "is the campaign's pace, a lower bound (raise --backlog)")
    print(f"  the send path's extra work per state change without a subscriber: {lookup_cost() * 1e6:.2f} µs "
          "(the outbox's look-up of who wants the event)")
    print_write_cost()


def print_rounds(rounds: list[dict]) -> None:
    """With several rounds: each run's send rate against the no-subscriber run of the same round (the machine's
    own variation between runs is as large as the effect measured: only rounds tell them apart)."""
    if len(rounds) < 2 or "none" not in rounds[0]:
        return
    print(f"  {len(rounds)} rounds, the send rate against no subscriber in the same round:")
    for name in [name for name in rounds[0] if name != "none"]:
        changes = [100 * (r[name]["send_rate"] / r["none"]["send_rate"] - 1) for r in rounds]
        lower = sum(change < 0 for change in changes)
        print(f"    {name:<14} {', '.join(f'{change:+.1f}%' for change in changes)}; mean "
              f"{sum(changes) / len(changes):+.1f}%, lower in {lower} of {len(changes)}")
    print("  the last round in full:")


def print_write_cost() -> None:
    print("  the send path's CPU per event written to the outbox on Postgres (µs; in a transaction it has anyway):")
    print(f"    {'events a write':<32}" + "".join(f"{size:>10}" for size in WRITE_SIZES))
    costs = write_cost()
    for name in ("Blast", "VALUES always"):
        print(f"    {name:<32}" + "".join(f"{costs[name][size]:>10.1f}" for size in WRITE_SIZES))


WRITE_SIZES = (1, 5, 20, 50, 200)


ROUNDS = 5


def write_cost(*, repeats: int = 200) -> dict[str, dict[int, float]]:
    """CPU seconds (µs) per message.status event that outbox.messages_status adds to a transaction, for writes of
    WRITE_SIZES events, against a multi-row VALUES for every size (what Blast did before, still what a hand-written
    INSERT would be)."""
    from types import SimpleNamespace

    from bench import scratch_database
    from campaigns.db import engine_for, migrate
    from campaigns.models import utcnow

    url = scratch_database.create()
    try:
        migrate(url)
        engine = engine_for(url)
        subscriptions.add(engine, "http://127.0.0.1:9/bench", "message.status")

        def rows_of(size: int) -> list:
            return [SimpleNamespace(campaign_id=1, phone=f"+2567{i:08d}", state="submitted",
                                    provider_message_id=f"gw-{i}", error_code=None) for i in range(size)]

        def values_always(connection, rows: list[dict]) -> None:
            cursor_owner = connection.connection.driver_connection
            with cursor_owner.cursor() as cursor:
                cursor.execute(outbox._INSERT + "VALUES " + ", ".join([outbox._ROW] * len(rows)),
                               [row[name] for row in rows for name in outbox._COLUMNS])

        def cpu(size: int, write) -> float:
            rows = rows_of(size)
            with engine.connect() as connection:
                def once(with_write: bool) -> None:
                    with connection.begin():
                        connection.exec_driver_sql("SELECT 1")
                        if with_write:
                            write(connection, rows)
                for with_write in (False, True):
                    for _ in range(50):
                        once(with_write)
                # the least of several rounds, alternating, each way: what the work costs, not what else ran
                spent = {False: math.inf, True: math.inf}
                for _round in range(ROUNDS):
                    for with_write in (False, True):
                        started = time.process_time()
                        for _ in range(repeats):
                            once(with_write)
                        spent[with_write] = min(spent[with_write], time.process_time() - started)
            return (spent[True] - spent[False]) / repeats / size * 1e6

        original = outbox._insert
        results: dict[str, dict[int, float]] = {"Blast": {}, "VALUES always": {}}
        for size in WRITE_SIZES:
            results["Blast"][size] = cpu(size, lambda c, rows: outbox.messages_status(c, rows, utcnow()))
            outbox._insert = values_always
            try:
                results["VALUES always"][size] = cpu(size, lambda c, rows: outbox.messages_status(c, rows, utcnow()))
            finally:
                outbox._insert = original
        return results
    finally:
        scratch_database.drop(url)


def lookup_cost() -> float:
    """Seconds per call of what a transition adds with no subscription (outbox.messages_moved), on SQLite."""
    import tempfile
    import timeit

    from campaigns.db import engine_for, migrate
    from campaigns.models import utcnow
    from campaigns.states import MessageState

    with tempfile.TemporaryDirectory(prefix="blast-bench-") as folder:
        url = f"sqlite:///{folder}/lookup.db"
        migrate(url)
        now = utcnow()
        try:
            with engine_for(url).connect() as connection:
                outbox.messages_moved(connection, [1], MessageState.SUBMITTED, now)  # read once, then cached
                calls = 100_000
                return timeit.timeit(lambda: outbox.messages_moved(connection, [1], MessageState.SUBMITTED, now),
                                     number=calls) / calls
        finally:
            engine_for(url).dispose()


if __name__ == "__main__":
    main()
