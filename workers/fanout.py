"""The threads that send a task's single-message calls, each at its own slot.

A task books its slots in one round trip to the limiter, one interval apart; a slot is a few
milliseconds long, a gateway's answer can take a hundred. So the task's thread does not send them one
after another: each call waits for its slot on a thread of this pool and goes out at the slot's time,
whatever the answers before it are doing. Threads are started as they are needed, up to `MAX_THREADS`.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

# 16 task threads (the worker's default concurrency) x 10 messages per task (pacer.MAX_TASK_BATCH):
# enough for every slot a worker process can hold to be waited on at once.
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
