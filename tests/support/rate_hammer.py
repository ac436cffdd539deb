"""Hammer a rate limiter from threads and processes, and watch where the messages arrive.

The "gateway" is a UDP socket: each granted message is one datagram, stamped by the kernel when it
arrives (SO_TIMESTAMPNS), so the receiving thread's own scheduling adds no jitter to the measurement.
A sender then waits `latency` seconds, as it would for a gateway's answer. Used by the tests
(correctness: counts in windows) and by bench/rate_limit.py (figures).
"""

from __future__ import annotations

import itertools
import multiprocessing
import socket
import struct
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass

# Linux's SO_TIMESTAMPNS; Python's socket module does not export it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
STOP = b"stop"


class Arrivals:
    """A UDP receiver on 127.0.0.1 that records each datagram's arrival time (seconds, wall clock)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.address = self.socket.getsockname()
        self.times: list[float] = []
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while True:
            data, ancillary, _flags, _sender = self.socket.recvmsg(64, socket.CMSG_SPACE(16))
            if data == STOP:
                return
            stamp = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("@qq", value[:16])
                    stamp = seconds + nanoseconds / 1e9
            self.times.append(stamp)

    def close(self) -> list[float]:
        """Every arrival so far, sorted (call once the senders are done)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(STOP, self.address)
        self._thread.join(timeout=10)
        self.socket.close()
        return sorted(self.times)

    def __enter__(self) -> Arrivals:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._thread.is_alive():
            self.close()


def peak(times: list[float], window: float = 1.0) -> int:
    """The most arrivals in any closed window of `window` seconds (`times` sorted)."""
    return max((bisect_right(times, start + window) - i for i, start in enumerate(times)), default=0)


def achieved(times: list[float]) -> float:
    """Arrivals per second from the first to the last."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


@dataclass
class Tally:
    acquired: int = 0
    refused: int = 0
    round_trips: int = 0
    cpu_seconds: float = 0.0  # the processes' CPU while sending
    limiter_cpu_seconds: float = 0.0  # the CPU of the senders' threads inside `acquire`


def send_from_threads(limiter, key: str, *, rate: float, threads: int, seconds: float, address,
                      latency: float, max_wait: float = 1.0, hand_back: float = 0.1,
                      tally: Tally | None = None) -> int:
    """`threads` threads acquire and send for `seconds`; returns how many messages they sent (and adds
    to `tally`). A thread refused a slot pauses `hand_back` seconds (the engine hands its message back
    to pending, and the thread takes the next task)."""
    tally = tally or Tally()
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def run() -> None:
        sent = refused = 0
        cpu = 0.0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            while time.monotonic() < end:
                started = time.thread_time()
                taken = limiter.acquire(key, rate=rate, max_wait=max_wait)
                cpu += time.thread_time() - started
                if taken:
                    sender.sendto(b"m", address)
                    sent += 1
                    time.sleep(latency)
                else:
                    refused += 1
                    time.sleep(hand_back)
        with lock:
            tally.acquired += sent
            tally.refused += refused
            tally.limiter_cpu_seconds += cpu

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return tally.acquired


def _process(redis_url: str, options: dict, key: str, kwargs: dict, ready, start, results) -> None:
    from workers.rate_limits import RateLimiter, RedisBackend

    backend = RedisBackend.from_url(redis_url)
    backend.client.ping()
    ready.release()
    start.wait()
    tally = Tally()
    execute = backend.client.execute_command
    calls = itertools.count()  # next() is atomic: threads may count at once

    def counted(*args, **more):
        next(calls)
        return execute(*args, **more)

    backend.client.execute_command = counted
    started = time.process_time()
    send_from_threads(RateLimiter(backend, **options), key, tally=tally, **kwargs)
    tally.cpu_seconds = time.process_time() - started
    tally.round_trips = next(calls)
    results.put(tally)


def send_from_processes(redis_url: str, key: str, *, processes: int, options: dict | None = None,
                        **kwargs) -> Tally:
    """`processes` forked processes, each running send_from_threads over its own Redis limiter
    (`options` for RateLimiter); returns their totals (round trips counted at each client)."""
    context = multiprocessing.get_context("fork")
    results, ready, start = context.Queue(), context.Semaphore(0), context.Event()
    children = [context.Process(target=_process,
                                args=(redis_url, options or {}, key, kwargs, ready, start, results))
                for _ in range(processes)]
    for child in children:
        child.start()
    for _ in children:  # all connected before any sends, so that the run starts at full strength
        ready.acquire(timeout=60)
    start.set()
    tallies = [results.get(timeout=kwargs["seconds"] + 60) for _ in children]
    for child in children:
        child.join()
    return Tally(*(sum(getattr(t, name) for t in tallies) for name in Tally.__dataclass_fields__))


class CountingBackend:
    """A backend that counts bookings, and keeps the `count` each asked for."""

    def __init__(self, backend):
        self.backend, self.bookings, self.counts = backend, 0, []

    def book(self, key, **options):
        self.bookings += 1
        self.counts.append(options.get("count", 1))
        return self.backend.book(key, **options)

    def __getattr__(self, name):
        return getattr(self.backend, name)
