"""What a process made while starting kept out of the garbage collector's full passes.

CPython's full collection (generation 2) walks every object the collector tracks, with the interpreter's lock held:
every thread of the process stops until it ends. In a `blast worker`, which has imported Celery, SQLAlchemy, pandas
and the gateways' clients, a full pass took 100-230 ms, and the sandbox's took 45-120 ms. During sending that is
a stall the rate limiter cannot see coming: a request between its last check and its write leaves that much late,
and the gateway counts it in the next second (bench/dispatch.py at 250/s over 40 s: 9 to 23 throttling answers).

`gc.freeze()` (the standard library's answer for this) moves every object alive now to a permanent generation
that no collection walks again. Called once the process is ready, it leaves to the full passes only what was made
since: 4-8 ms during sending. What startup made lives as long as the process anyway; an object of it that later
becomes part of an unreachable cycle is not freed, which is why this is done once, not again and again.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("blast.workers")


def freeze_startup_objects() -> int:
    """Collect what startup left as garbage, then move every object alive to the permanent generation; returns how
    many objects are there now."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("%d objects made while starting kept out of the garbage collector's full passes", frozen)
    return frozen
