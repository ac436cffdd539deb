"""The threads that send a task's single-message calls to a slow gateway, each at its own slot.

A task books its slots in one round trip to the limiter, one interval apart; a slot is a few
milliseconds long, a gateway's answer can take a hundred. So for a gateway slower than
the limiter's `Policy.late` the task's thread does not send them one after another: at each slot it hands
the call to a thread of this pool, whatever the answers before it are doing. Threads are started as they are
needed, up to `MAX_THREADS`; a call that waits for one past its slot's deadline is booked again.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

# Calls in flight at once per worker process: 160 answers of a gateway taking 100 ms are 1,600 msg/s.
MAX_THREADS = 160

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """This process's pool (a forked child makes its own)."""
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="blast-send")
    return _pool


def _forget_after_fork() -> None:
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
