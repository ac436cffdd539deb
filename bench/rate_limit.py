"""Rate limiter benchmark: prints figures, asserts nothing.

  speed      one process hammering one key at 10,000/s (the highest rate an account may have): calls
             and acquisitions per second, Redis round trips and the process's CPU microseconds per call,
             `reserve` (never waits) and `acquire` (books and sleeps), local and Redis backend
  accuracy   caps of 20, 80 and 250 msg/s, 4 processes x 10 threads, each message sent as a datagram to
             a local "gateway" that stamps its arrival (kernel time), then 100 ms waiting for the answer:
             achieved/cap, the most arrivals in any one second/cap, acquisitions refused (the wait was
             longer than max_wait = 1 s, or the thread woke up too late), Redis round trips per message
             sent (refusals included); the same with no safety margin (a plain one-second window), to
             show why it has one; and 1,000 msg/s from 2 processes x 64 threads

Needs the local Redis. Usage: python bench/rate_limit.py [--only speed|accuracy] [--seconds S]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import private_redis  # noqa: E402
from tests.support.rate_hammer import Arrivals, achieved, peak, send_from_processes  # noqa: E402
from workers.rate_limits import LocalBackend, RateLimiter, RedisBackend  # noqa: E402

TOP_RATE = 10_000  # AccountConfig allows at most this


def counting(backend: RedisBackend):
    """Count the Redis commands `backend` sends (each is one round trip)."""
    calls = itertools.count()
    execute = backend.client.execute_command

    def counted(*args, **options):
        next(calls)
        return execute(*args, **options)

    backend.client.execute_command = counted
    return lambda: next(calls)


def hammer(limiter: RateLimiter, key: str, *, call: str, threads: int, seconds: float):
    """`threads` threads calling `call` as fast as they can: (calls, acquired, seconds, CPU seconds)."""
    calls, acquired = [0] * threads, [0] * threads
    end = time.monotonic() + seconds

    def run(index: int) -> None:
        while time.monotonic() < end:
            if call == "reserve":
                acquired[index] += limiter.reserve(key, rate=TOP_RATE) == 0.0
            else:
                acquired[index] += limiter.acquire(key, rate=TOP_RATE, max_wait=1.0)
            calls[index] += 1

    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    started, cpu = time.monotonic(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(calls), sum(acquired), time.monotonic() - started, time.process_time() - cpu


def speed(seconds: float) -> None:
    print(f"speed: one process, one key at {TOP_RATE:,}/s, {seconds:g} s a row")
    print(f"  {'backend':<8} {'call':<8} {'threads':>7} {'calls/s':>8} {'acquired/s':>11} "
          f"{'round trips/call':>17} {'CPU us/call':>12}")
    for name, call, threads in [("local", "reserve", 1), ("redis", "reserve", 1),
                                ("local", "acquire", 1), ("local", "acquire", 4),
                                ("redis", "acquire", 1), ("redis", "acquire", 4)]:
        backend = LocalBackend() if name == "local" else RedisBackend.from_url(private_redis.base_url())
        count = counting(backend) if name == "redis" else None
        limiter, key = RateLimiter(backend), f"bench-{uuid.uuid4().hex[:8]}"
        limiter.reserve(key, rate=TOP_RATE)  # loads the scripts, opens the connection
        before = count() + 1 if count else 0
        calls, acquired, elapsed, cpu = hammer(limiter, key, call=call, threads=threads, seconds=seconds)
        trips = f"{(count() - before) / calls:.2f}" if count else "-"
        print(f"  {name:<8} {call:<8} {threads:>7} {calls / elapsed:>8,.0f} {acquired / elapsed:>11,.0f} "
              f"{trips:>17} {cpu / calls * 1e6:>12,.0f}")
        backend.forget(key)


def accuracy(seconds: float) -> None:
    print(f"\naccuracy: Redis backend, {seconds:g} s a row, 100 ms gateway latency, kernel-stamped arrivals")
    print(f"  {'cap/s':>6} {'procs x threads':>15} {'safety':>7} {'achieved/cap':>13} {'peak/cap':>9} "
          f"{'peak':>5} {'refused':>8} {'round trips/acq':>16}")
    rows = [(cap, 4, 10, 0.02) for cap in (20, 80, 250)]
    rows += [(cap, 4, 10, 0.0) for cap in (20, 80, 250)]
    rows += [(1000, 2, 64, 0.02)]
    for cap, processes, threads, safety in rows:
        key = f"bench-{uuid.uuid4().hex[:8]}"
        with Arrivals() as gateway:
            tally = send_from_processes(private_redis.base_url(), key, processes=processes, threads=threads, rate=cap,
                                        seconds=seconds, address=gateway.address, latency=0.1,
                                        options={"safety": safety})
            arrivals = gateway.close()
        RedisBackend.from_url(private_redis.base_url()).forget(key)
        most = peak(arrivals)
        print(f"  {cap:>6} {f'{processes} x {threads}':>15} {safety:>7.2f} {achieved(arrivals) / cap:>13.3f} "
              f"{most / cap:>9.3f} {most:>5} {tally.refused:>8} {tally.round_trips / tally.acquired:>16.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["speed", "accuracy"])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each accuracy row")
    options = parser.parse_args()
    if options.only in (None, "speed"):
        speed(min(options.seconds, 3.0))
    if options.only in (None, "accuracy"):
        accuracy(options.seconds)


if __name__ == "__main__":
    main()
