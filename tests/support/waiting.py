"""Waiting for an event in a test: poll until something holds, fail with what was awaited."""

from __future__ import annotations

import time


def wait_until(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Ask `predicate` every `interval` seconds until it returns something truthy, and return that; fail the
    test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
