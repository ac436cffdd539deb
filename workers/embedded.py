"""The embedded default: a real Celery worker (thread pool) and the pacer/reconciler loop, inside this
process, on whatever broker the settings name (the filesystem broker when no server is configured).

Used by `blast demo`, by `blast launch --wait` on the embedded default, and by tests that want a worker
in threads. Production runs `blast worker` and `blast beat` processes instead.
"""

from __future__ import annotations

import logging
import threading

from celery.worker import WorkController

from workers import pacer
from workers.app import QUEUES, app, configure

log = logging.getLogger("blast.embedded")

PACE_EVERY_SECONDS = 0.25
RECONCILE_EVERY_SECONDS = 5.0
WEBHOOK_SWEEP_EVERY_SECONDS = 1.0  # what beat's sweep-webhooks does in production


class EmbeddedWorker:
    """`with EmbeddedWorker(): ...` runs a worker and the pacing loop until the block ends."""

    def __init__(self, *, concurrency: int = 8, pace: bool = True, hostname: str = "embedded@blast"):
        self.concurrency = concurrency
        self.pace = pace
        self.hostname = hostname
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.worker: WorkController | None = None

    def __enter__(self) -> EmbeddedWorker:
        from workers import tasks, webhooks  # noqa: F401  (registers the tasks)

        configure(app)
        self.worker = WorkController(
            app=app, hostname=self.hostname, pool="threads", concurrency=self.concurrency,
            queues=list(QUEUES), without_heartbeat=True, without_mingle=True, without_gossip=True,
            loglevel="WARNING", ready_callback=None,
        )
        worker_thread = threading.Thread(target=self.worker.start, name="blast-worker", daemon=True)
        worker_thread.start()
        self._threads.append(worker_thread)
        if self.pace:
            ticker = threading.Thread(target=self._tick, name="blast-pacer", daemon=True)
            ticker.start()
            self._threads.append(ticker)
        return self

    def _tick(self) -> None:
        from campaigns import delivery
        from campaigns.db import get_engine
        from workers.rate_limits import get_limiter
        from workers.tasks import publish_send, reconcile_now
        from workers.webhooks import sweep

        limiter = get_limiter()
        since_reconcile = RECONCILE_EVERY_SECONDS
        since_sweep = WEBHOOK_SWEEP_EVERY_SECONDS
        while not self._stop.wait(PACE_EVERY_SECONDS):
            try:
                pacer.pace(publish=publish_send, limiter=limiter)
                since_reconcile += PACE_EVERY_SECONDS
                since_sweep += PACE_EVERY_SECONDS
                if since_reconcile >= RECONCILE_EVERY_SECONDS:
                    reconcile_now()
                    # what beat's apply-waiting-events does in production: a status webhook that came before its
                    # message's answer was recorded (Meta posts `sent` at once) is applied once it is
                    delivery.apply_waiting(get_engine())
                    since_reconcile = 0.0
                if since_sweep >= WEBHOOK_SWEEP_EVERY_SECONDS:
                    sweep()
                    since_sweep = 0.0
            except Exception:
                log.exception("pacing round failed; trying again")

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self.worker is not None:
            self.worker.stop(in_sighandler=False, exitcode=0)
        for thread in self._threads:
            thread.join(timeout=15)
