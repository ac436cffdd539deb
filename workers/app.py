"""The Celery app: configured from Blast's settings, tasks grouped by area, one queue per kind of work.

Queues: `send` (send tasks, the hot path), `pace` (pacer and reconciler), `reports` (delivery-report
polling, balance checks, reminder blasts), `ingest` (contact files read into campaigns: CPU-heavy, so the
deployed shape gives it a worker process of its own, away from the sending threads), `webhooks` (events POSTed
to the systems that subscribe: a worker process of its own too, so a slow subscriber never slows sending).

Delivery guarantees come from the database, not the broker: tasks are acknowledged late and a redelivered
task finds its messages already claimed (or its ingest job leased) and does nothing.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery
from kombu import Queue, pools

from campaigns.settings import get_settings
from workers import broker_files

broker_files.install()  # the embedded default's filesystem broker, without kombu's empty-message race

# Redis redelivers an unacknowledged task after this many seconds. Send tasks finish in seconds, and the
# pacer never publishes a countdown longer than a few seconds, so nothing legitimately runs this long.
VISIBILITY_TIMEOUT_SECONDS = 300

QUEUES = ("send", "pace", "reports", "ingest", "webhooks")


def _transport_options(broker_url: str) -> dict:
    if broker_url.startswith("filesystem://"):
        folder = Path(get_settings().broker_folder)
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "control_folder": str(folder / "control"),
            "polling_interval": 0.05,
        }
    if broker_url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS}
    return {}


def create_app() -> Celery:
    celery = Celery("blast", include=["workers.tasks", "workers.webhooks", "schedules.tasks"])
    celery.conf.update(
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="send",
        task_routes={
            "blast.send_messages": {"queue": "send"},
            "blast.pace": {"queue": "pace"},
            "blast.reconcile": {"queue": "pace"},
            "blast.ingest": {"queue": "ingest"},
            "blast.deliver_webhooks": {"queue": "webhooks"},
            "blast.sweep_webhooks": {"queue": "webhooks"},
            "blast.prune_webhooks": {"queue": "webhooks"},
            "blast.*": {"queue": "reports"},
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        timezone="UTC",
        enable_utc=True,
    )
    configure(celery)
    return celery


def configure(celery: Celery) -> None:
    """(Re)apply the broker settings; connections made with older ones are closed (tests, the demo)."""
    settings = get_settings()
    celery.conf.broker_url = settings.broker_url
    celery.conf.broker_transport_options = _transport_options(settings.broker_url)
    if celery._pool is not None:
        celery._pool.force_close_all()
        celery._pool = None
    if "amqp" in celery.__dict__:
        celery.amqp._producer_pool = None
    pools.reset()


def ensure_configured(celery: Celery) -> None:
    """configure(), when the settings name another broker (or folder) than the app was configured with (a
    process that read its settings again: the tests, the demo)."""
    broker_url = get_settings().broker_url
    if (celery.conf.broker_url != broker_url
            or celery.conf.broker_transport_options != _transport_options(broker_url)):
        configure(celery)


app = create_app()
