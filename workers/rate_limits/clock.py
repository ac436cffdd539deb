"""This host's view of the Redis server's clock.

The Redis backend schedules in server time (TIME), so every host agrees. A booked slot is due at a
server time; a worker should send at that moment, not "the due offset after the answer arrived": a
slow answer (a busy Redis, a busy process) would make it late by the answer's delay, and that jitter is
what puts rate + 1 messages into a second at the gateway. So each call also measures the offset between
the server's clock and this host's wall clock, NTP-style: the sample of the fastest round trip is the
most accurate (error at most half of it), and a sample ages by AGE_PENALTY seconds of round trip per
second, so that a drifting or stepped clock is re-learned. While the offset is not known within
MAX_ERROR (the first calls, a busy host) no correction is made (an early send is as bad as a late one),
and the whole round trip is reported as uncertain instead: the caller can tell that it may be late.
"""

from __future__ import annotations

import math
import threading

from workers.rate_limits.base import after_fork_in_child

AGE_PENALTY = 0.001
MAX_ERROR = 0.002


class ServerClock:
    """Offset of the server's clock from this host's `time.time()` (seconds)."""

    def __init__(self) -> None:
        self.offset: float | None = None
        self._round_trip = math.inf  # of the kept sample
        self._at = -math.inf  # when it was taken
        self._lock = threading.Lock()
        after_fork_in_child(self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent may have held it at the fork

    def lag(self, sent: float, received: float, server_now: float) -> tuple[float, float]:
        """A call sent and answered at these local times saw the server's clock at `server_now`.
        Returns the seconds from that moment to `received` (the answer's delay, within [0, the round
        trip]) and by how much more it may have been (seconds)."""
        round_trip = received - sent
        with self._lock:
            if round_trip <= self._aged(received):
                self.offset = server_now - (sent + received) / 2
                self._round_trip, self._at = round_trip, received
            error = self._aged(received) / 2
            if self.offset is None or error > MAX_ERROR:
                return 0.0, round_trip
            lag = min(max(received - (server_now - self.offset), 0.0), round_trip)
            return lag, min(error, round_trip - lag)

    def _aged(self, now: float) -> float:
        return self._round_trip + (now - self._at) * AGE_PENALTY
