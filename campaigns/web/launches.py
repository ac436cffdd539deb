"""Launches of big uploads run in a background thread, so the request answers at once with a page that
counts the rows ingested so far and moves on to the campaign page when they are all in.

The jobs live in this process's memory: `blast web` serves from one process. A web process that stops
mid-ingest leaves the campaign a draft (never sent), which the operator can cancel.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from campaigns.db import get_engine
from campaigns.models import Campaign, Message, utcnow

# Uploads larger than this (bytes) are ingested in the background; smaller ones within the request.
BACKGROUND_BYTES = 5 * 1024 * 1024
JOBS_KEPT = 200  # finished jobs remembered, the oldest forgotten first


@dataclass
class LaunchJob:
    id: str
    source_file: str
    started: datetime = field(default_factory=utcnow)
    campaign_id: int | None = None  # set when the ingest finished and the campaign started
    error: str | None = None  # why the launch failed, for the operator

    @property
    def done(self) -> bool:
        return self.campaign_id is not None or self.error is not None


_jobs: dict[str, LaunchJob] = {}
_lock = threading.Lock()


def in_background(path: Path) -> bool:
    return path.stat().st_size > BACKGROUND_BYTES


def start(path: Path, launch) -> LaunchJob:
    """Run `launch()` (returns the campaign id; a BlastError or ConfigError is the operator's problem) in a
    daemon thread; returns its job."""
    from campaigns.errors import BlastError
    from campaigns.settings import ConfigError

    job = LaunchJob(id=secrets.token_hex(16), source_file=str(path))

    def run() -> None:
        try:
            job.campaign_id = launch()
        except (BlastError, ConfigError) as error:
            job.error = str(error)
        except Exception as error:  # the page must end, whatever went wrong
            job.error = f"the launch failed ({type(error).__name__})"

    with _lock:
        _jobs[job.id] = job
        for old in list(_jobs)[:-JOBS_KEPT]:
            if _jobs[old].done:
                del _jobs[old]
    threading.Thread(target=run, name=f"blast-launch-{job.id[:8]}", daemon=True).start()
    return job


def find(job_id: str) -> LaunchJob | None:
    with _lock:
        return _jobs.get(job_id)


def rows_so_far(job: LaunchJob) -> int:
    """Message rows written so far for the job's campaign (the newest draft made from its file)."""
    engine = get_engine()
    with engine.connect() as connection:
        campaign_id = connection.execute(
            select(Campaign.id).where(Campaign.source_file == job.source_file, Campaign.created_at >= job.started)
            .order_by(Campaign.id.desc()).limit(1)).scalar()
        if campaign_id is None:
            return 0
        return connection.execute(select(func.count()).select_from(Message)
                                  .where(Message.campaign_id == campaign_id)).scalar() or 0
