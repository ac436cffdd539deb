"""The adaptive rate: a throttling answer halves an account's effective rate, clean time wins it back.

The state is three numbers kept by the backend (in Redis for the Redis backend, so every process
agrees): `f0`, the effective fraction of the configured rate set by the last throttling answer, at `t0`;
and `halved`, when an answer last halved it. The fraction now is computed from them, so a clean answer
costs nothing to record:

    fraction(now) = min(1, f0 + recovery_step x floor((now - t0) / recovery_period))

that is, by default, +10 % of the configured rate for each full second without a throttling answer.
A throttling answer within `throttle_cooldown` of the last halving (messages that were already in flight
when it happened) does not halve again; it restarts the clean time. The Lua scripts of the Redis
backend implement the same rules (redis_scripts.py); tests check that both backends agree.

Times in seconds of the backend's clock; fractions in (0, 1].
"""

from __future__ import annotations

import math

from workers.rate_limits.base import Policy


def recovered(f0: float | None, t0: float | None, now: float, policy: Policy) -> float:
    """The effective fraction of the configured rate at `now`."""
    if f0 is None or t0 is None:
        return 1.0
    steps = math.floor(max(0.0, now - t0) / policy.recovery_period)
    return min(1.0, f0 + policy.recovery_step * steps)


def after_throttle(f0: float | None, t0: float | None, halved: float | None, now: float,
                   policy: Policy) -> tuple[float, float, float]:
    """The adaptive state (f0, t0, halved) after a throttling answer at `now`."""
    fraction = recovered(f0, t0, now, policy)
    if halved is not None and 0 <= now - halved < policy.throttle_cooldown:
        return fraction, now, halved
    return max(policy.min_factor, fraction / 2), now, now


def quiet_at(f0: float | None, t0: float | None, halved: float | None, policy: Policy) -> float:
    """When the adaptive state stops mattering: fully recovered and out of the cooldown."""
    at = -math.inf
    if f0 is not None and t0 is not None:
        at = t0 + math.ceil((1.0 - f0) / policy.recovery_step - 1e-9) * policy.recovery_period
    if halved is not None:
        at = max(at, halved + policy.throttle_cooldown)
    return at
