"""The in-process backend: the embedded default, one process, many threads. Same rules as Redis."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from workers.rate_limits import adaptive
from workers.rate_limits.base import Backend, Grant, Policy, after_fork_in_child, shape
from workers.rate_limits.schedule import compared_range, extendable, plan

SWEEP_EVERY_SECONDS = 1.0
STATE_NUMBERS = 1 << 40  # grant numbers each state may use before the next state's begin


@dataclass(slots=True)
class KeyState:
    seq: int = 0  # the number of the next grant (each new state starts past every earlier state's numbers)
    checked: int = -1  # the newest grant number a new slot was checked against
    tat: float | None = None
    log: deque[float] = field(default_factory=deque)  # the last grants' due times plus margins, oldest first
    last: float | None = None  # the newest due time granted
    f0: float | None = None
    t0: float | None = None
    halved: float | None = None
    busy_until: float = -math.inf  # when the schedule stops constraining anything
    span: float = 1.0  # the last booking's window without its margin (seconds)
    expires: float = math.inf


class LocalBackend(Backend):
    """Thread-safe in-memory state. `clock` (seconds, monotonic by default) is replaceable for tests;
    a key's state is dropped `idle_grace` seconds after it stops mattering."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, idle_grace: float = 1.0) -> None:
        self.clock = clock
        self.idle_grace = idle_grace
        self._states: dict[str, KeyState] = {}
        self._lock = threading.Lock()
        self._next_sweep = -math.inf
        self._states_made = 0
        after_fork_in_child(self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent may have held it at the fork

    def book(self, key, *, rate, policy, count=1, spaced=False, horizon=0.0, margin=None, now=None) -> Grant:
        with self._lock:
            now = self._now(now)
            state = self._state(key, now)
            factor = adaptive.recovered(state.f0, state.t0, now, policy)
            margin = policy.safety if margin is None else min(margin, policy.safety)
            schedule = shape(rate * factor, margin)
            if count > schedule.slots:
                return Grant(False, (math.inf,) * count, factor)
            older: list[float | None] = [None] * count
            indexes = compared_range(len(state.log), schedule.slots, count)
            if indexes is not None:
                base = len(state.log) - schedule.slots
                for index in range(indexes[0], indexes[1] + 1):
                    older[index - base] = state.log[index]
            dues, tat = plan(tat=state.tat, last=state.last, older=older, now=now,
                             count=count, spaced=spaced, shape=schedule, burst=policy.burst)
            grant = Grant(dues[0] - now <= horizon, tuple(due - now for due in dues), factor, seq=state.seq)
            if grant.taken:
                if indexes is not None:
                    state.checked = max(state.checked, state.seq - len(state.log) + indexes[1])
                for due in dues:
                    state.log.append(max(due + margin, state.log[-1]) if state.log else due + margin)
                state.seq += count
                state.last = dues[-1]
                while len(state.log) > schedule.slots:
                    state.log.popleft()
                state.tat, state.span = tat, schedule.span
                state.busy_until = max(state.busy_until, tat, state.log[-1] + schedule.span)
                self._keep(key, state, policy)
            return grant

    def extend(self, key, *, seq, within, policy, now=None) -> bool:
        with self._lock:
            now = self._now(now)
            state = self._states.get(key)
            if state is None or state.expires <= now:
                return False
            index = extendable(seq=seq, logged=len(state.log), next_seq=state.seq, checked=state.checked)
            if index is None:
                return False
            until = now + within
            for later in range(index, len(state.log)):  # entries never fall below an older one
                if state.log[later] >= until:
                    break
                state.log[later] = until
            state.busy_until = max(state.busy_until, until + state.span)
            state.expires = max(state.expires, state.busy_until + self.idle_grace)
            return True

    def throttle(self, key, *, policy, now=None) -> float:
        with self._lock:
            now = self._now(now)
            state = self._state(key, now)
            state.f0, state.t0, state.halved = adaptive.after_throttle(state.f0, state.t0, state.halved, now,
                                                                         policy)
            self._keep(key, state, policy)
            return state.f0

    def factor(self, key, *, policy, now=None) -> float:
        with self._lock:
            now = self._now(now)
            state = self._states.get(key)
            if state is None or state.expires <= now:
                return 1.0
            return adaptive.recovered(state.f0, state.t0, now, policy)

    def holds(self, key: str) -> bool:
        with self._lock:
            state = self._states.get(key)
            return state is not None and state.expires > self.clock()

    def forget(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _state(self, key: str, now: float) -> KeyState:
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY_SECONDS
            for idle in [name for name, state in self._states.items() if state.expires <= now]:
                del self._states[idle]
        state = self._states.get(key)
        if state is None or state.expires <= now:
            self._states_made += 1
            return KeyState(seq=self._states_made * STATE_NUMBERS)
        return state

    def _keep(self, key: str, state: KeyState, policy: Policy) -> None:
        quiet = adaptive.quiet_at(state.f0, state.t0, state.halved, policy)
        state.expires = max(state.busy_until, quiet) + self.idle_grace
        self._states[key] = state
