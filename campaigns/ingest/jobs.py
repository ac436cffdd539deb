"""Ingest jobs: a contact file read into a campaign's messages, resumable, by whoever holds the job's lease.

A launch creates the campaign (a draft) and its job in one transaction. The launching process runs the job
itself (`blast launch`, a small web upload), or a worker does (a big web upload: task `blast.ingest` on the
`ingest` queue). A run first takes the job's lease (a conditional UPDATE, so one run at a time), then writes
the messages chunk by chunk; each chunk's transaction also moves the job's `rows_done`, counts and report and
renews the lease, and only while the lease is still that run's. So a run stopped anywhere (a worker
SIGKILLed, the web process restarted, Postgres restarted) leaves each row written once or not at all, and the
next run (a Celery retry, or the reconciler's sweep once the lease has lapsed: `stalled`) goes on after
`rows_done`, with the recipients already written, so nothing is written twice.

When every row is in, one transaction launches the campaign (now, or at its time) and marks the job done: a
campaign is launched once. A job that was resumed is first checked whole (as many messages as rows, each row
once, each recipient live once); one that ran from the start had each chunk's rows counted by the database.
A file Blast cannot read fails the job with the reason; the operator retries it (after fixing what the
reason says) or discards it (the draft is cancelled). No draft is left that nobody knows about: a draft's
page shows its job.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine

from campaigns import audit
from campaigns.errors import BlastError
from campaigns.ingest import IngestReport, Resume, seen_key
from campaigns.ingest.seen import SeenNumbers
from campaigns.models import Campaign, IngestJob, Message, utcnow
from campaigns.settings import ConfigError, get_account, get_settings
from campaigns.states import CampaignStatus, IngestStatus, MessageState
from campaigns.transitions import move_campaigns

log = logging.getLogger("blast.ingest")
S = IngestStatus
OPEN = (S.QUEUED, S.RUNNING)  # a run may take these


class LeaseLost(Exception):
    """Another run holds the job now (this one's lease lapsed), or the job was discarded: stop, write nothing."""


@dataclass(frozen=True)
class Progress:
    """What a page or a progress bar shows of a job."""

    id: int
    campaign_id: int
    status: str
    rows: int
    valid: int
    skipped: int
    error: str | None

    @property
    def over(self) -> bool:
        return self.status in (S.DONE, S.FAILED, S.DISCARDED)


def lease_seconds() -> float:
    return get_settings().ingest_lease_seconds


def add(session, campaign_id: int, path: str | Path, *, phone_column: str | None = None, sheet: str | None = None,
        launch_at: datetime | None = None, start: bool = True, discard_file: bool = False,
        display_name: str | None = None, canary: str | None = None, canary_auto: bool = False) -> IngestJob:
    """A queued job for a draft campaign, added to the caller's session (committed with the campaign).

    `launch_at`: when the campaign starts once ingested (None: at once); `start` False leaves it a draft.
    `discard_file`: the file is deleted once its rows are in (a web upload nothing else reads).
    `display_name`: the file's name as the operator knows it (an upload is stored under another), for reasons.
    `canary` ("50" or "5%") and `canary_auto`: the campaign starts with a canary slice (campaigns.canary)."""
    options = {"phone_column": phone_column, "sheet": sheet, "start": start, "discard_file": discard_file,
               "launch_at": launch_at.isoformat() if launch_at is not None else None, "display_name": display_name,
               **({"canary": canary, "canary_auto": canary_auto} if canary else {})}
    job = IngestJob(campaign_id=campaign_id, source_file=str(path), options=json.dumps(options))
    session.add(job)
    return job


def claim(engine: Engine, job_id: int, token: str) -> bool:
    """Take the job's lease for `token`: when it is open and nobody holds it (or `token` already does)."""
    now = utcnow()
    with engine.begin() as connection:
        return bool(connection.execute(
            update(IngestJob).where(
                IngestJob.id == job_id, IngestJob.status.in_(OPEN),
                (IngestJob.lease_until.is_(None)) | (IngestJob.lease_until < now) | (IngestJob.lease_token == token))
            .values(status=S.RUNNING, lease_token=token, lease_until=now + timedelta(seconds=lease_seconds()),
                    attempts=IngestJob.attempts + 1, error=None, updated_at=now)).rowcount)


def run(engine: Engine, job_id: int, *, token: str | None = None,
        on_progress: Callable[[IngestReport, float | None], None] | None = None) -> str | None:
    """Run the job to its end under a lease; returns the campaign's status once launched (None when another
    run holds the job, or it is over). `on_progress(report, fraction read)` follows it chunk by chunk. A file
    problem fails the job (`failed`, with the reason) and raises the BlastError; a database or broker failure
    raises as it is and leaves the job to be resumed."""
    token = token or secrets.token_hex(16)
    if not claim(engine, job_id, token):
        return None
    with engine.connect() as connection:
        job = connection.execute(select(IngestJob).where(IngestJob.id == job_id)).one()
        campaign = connection.execute(select(Campaign).where(Campaign.id == job.campaign_id)).one()
    options = json.loads(job.options)
    try:
        resume = _resume_point(engine, job)

        def on_chunk(last_row: int, report: IngestReport, fraction: float | None):
            if on_progress is not None:
                on_progress(report, fraction)
            return _checkpoint(job_id, token, last_row, report)

        report = _ingest(engine, job, campaign, options, resume, on_chunk)
        return _finish(engine, job, campaign, options, token, report)
    except (BlastError, ConfigError) as error:
        reason, stored = str(error), f"{Path(job.source_file).name}: "
        if options.get("display_name") and reason.startswith(stored):
            reason = f"{options['display_name']}: {reason[len(stored):]}"
        _fail(engine, job_id, token, reason)
        raise


def _resume_point(engine: Engine, job) -> Resume:
    if not job.rows_done:
        return Resume()
    with engine.connect() as connection:
        phones = connection.execution_options(yield_per=100_000).execute(select(Message.phone).where(
            Message.campaign_id == job.campaign_id, Message.state != MessageState.SKIPPED)).scalars()
        seen = SeenNumbers(np.fromiter((seen_key(phone) for phone in phones if phone), dtype=np.int64))
    log.info("ingest job %s resumes after row %s (%s recipients written)", job.id, job.rows_done, len(seen))
    return Resume(after_row=job.rows_done, seen=seen, report=IngestReport.from_dict(json.loads(job.report)))


def _ingest(engine: Engine, job, campaign, options: dict, resume: Resume, on_chunk) -> IngestReport:
    from campaigns.lifecycle import ingest_into, quiet_timing

    return ingest_into(campaign.id, job.source_file, account=get_account(campaign.account_name),
                       template=campaign.template, region=campaign.region, media_url=campaign.media_url,
                       options=json.loads(campaign.options or "{}"), phone_column=options.get("phone_column"),
                       timing=quiet_timing(campaign.quiet_hours), engine=engine, sheet=options.get("sheet"),
                       resume=resume, on_chunk=on_chunk)


def _checkpoint(job_id: int, token: str, last_row: int, report: IngestReport):
    """The chunk's last statement: the job's progress, only while `token` holds the lease."""
    values = dict(rows_done=last_row, **_counts(report))

    def checkpoint(connection: Connection) -> None:
        now = utcnow()
        moved = connection.execute(
            update(IngestJob).where(IngestJob.id == job_id, IngestJob.lease_token == token,
                                    IngestJob.status == S.RUNNING)
            .values(**values, lease_until=now + timedelta(seconds=lease_seconds()), updated_at=now)).rowcount
        if not moved:
            raise LeaseLost(f"ingest job {job_id}: another run holds it, or it was discarded")

    return checkpoint


def check_written(connection: Connection, campaign_id: int, rows: int) -> str | None:
    """What is wrong with a campaign's ingested messages, or None: every row once, each recipient live once."""
    written = connection.execute(select(func.count()).select_from(Message)
                                 .where(Message.campaign_id == campaign_id)).scalar_one()
    if written != rows:
        return f"{written:,} messages written for {rows:,} rows"
    twice = connection.execute(
        select(Message.row_number).where(Message.campaign_id == campaign_id)
        .group_by(Message.row_number).having(func.count() > 1).limit(1)).scalar()
    if twice is not None:
        return f"row {twice} written twice"
    twice = connection.execute(
        select(Message.phone).where(Message.campaign_id == campaign_id, Message.state != MessageState.SKIPPED)
        .group_by(Message.phone).having(func.count() > 1).limit(1)).scalar()
    if twice is not None:
        return "a recipient is in the campaign twice"
    return None


def _finish(engine: Engine, job, campaign, options: dict, token: str, report: IngestReport) -> str | None:
    """One transaction: the checks, the campaign's start (with its canary slice, if any), the job done; then
    the pacer, now."""
    from campaigns import canary, lifecycle, messaging_limit
    from campaigns.settings import get_account

    now = utcnow()
    launch_at = datetime.fromisoformat(options["launch_at"]) if options.get("launch_at") else None
    with engine.begin() as connection:
        # A run from the start wrote each chunk once, counted by the database itself (the writer checks); a
        # resumed one is checked whole before anything is sent (a few seconds a million rows).
        resumed = job.attempts > 1 or job.rows_done > 0
        problem = check_written(connection, campaign.id, report.rows) if resumed else None
        if problem is not None:  # a bug, never a reason to send: the campaign stays a draft, explained
            raise BlastError(f"the campaign's messages do not match its file ({problem}); nothing was sent")
        status = None
        if options.get("start", True):
            messaging_limit.check(connection, campaign.id, get_account(campaign.account_name))
            if options.get("canary"):
                canary.set_slice(connection, campaign.id, options["canary"], auto=bool(options.get("canary_auto")))
            status = lifecycle.start_draft(connection, campaign.id, launch_at)
            if status is None:  # cancelled while its list was read
                _close(connection, job.id, token, S.DISCARDED, "the campaign was cancelled while its list was read")
                return None
        if not _close(connection, job.id, token, S.DONE, None, report):
            raise LeaseLost(f"ingest job {job.id}: another run holds it, or it was discarded")
    log.info("ingest job %s done in %s: %s", job.id, utcnow() - now, report.as_dict())
    if options.get("discard_file"):
        source = Path(job.source_file)
        source.unlink(missing_ok=True)
        with suppress(OSError):  # a folder of its own (an API list) goes too; an upload's keeps its name file
            source.parent.rmdir()
    if status == CampaignStatus.RUNNING:
        lifecycle.kick(campaign.id)
    return status


def _counts(report: IngestReport) -> dict:
    """The job's columns that follow the report."""
    return dict(rows=report.rows, valid=report.valid, skipped=report.rows - report.valid,
                report=json.dumps(report.as_dict()))


def _close(connection: Connection, job_id: int, token: str, status: str, error: str | None,
           report: IngestReport | None = None) -> bool:
    values = _counts(report) if report is not None else {}
    now = utcnow()
    return bool(connection.execute(
        update(IngestJob).where(IngestJob.id == job_id, IngestJob.lease_token == token, IngestJob.status == S.RUNNING)
        .values(status=status, error=error, lease_token=None, lease_until=None, updated_at=now, finished_at=now,
                **values)).rowcount)


def _fail(engine: Engine, job_id: int, token: str, reason: str) -> None:
    with engine.begin() as connection:
        _close(connection, job_id, token, S.FAILED, reason)


def retry(engine: Engine, job_id: int) -> bool:
    """A failed job queued again (it resumes after its last written row); False when it is not failed."""
    with engine.begin() as connection:
        job = connection.execute(
            update(IngestJob).where(IngestJob.id == job_id, IngestJob.status == S.FAILED)
            .values(status=S.QUEUED, error=None, finished_at=None, updated_at=utcnow())
            .returning(IngestJob.campaign_id)).first()
        if job is not None:
            audit.record(connection, "campaign.launch", "campaign", job.campaign_id, {"ingest": "retried"})
        return job is not None


def discard(engine: Engine, job_id: int) -> bool:
    """Stop a job that is not done (a run in progress stops at its next chunk) and cancel its draft."""
    with engine.begin() as connection:
        job = connection.execute(select(IngestJob).where(IngestJob.id == job_id)).one_or_none()
        if job is None or job.status in (S.DONE, S.DISCARDED):
            return False
        connection.execute(update(IngestJob).where(IngestJob.id == job_id)
                           .values(status=S.DISCARDED, lease_token=None, lease_until=None, updated_at=utcnow(),
                                   finished_at=utcnow()))
        move_campaigns(connection, where=[Campaign.id == job.campaign_id], expected=CampaignStatus.DRAFT,
                       to=CampaignStatus.CANCELLED, finished_at=utcnow())
        audit.record(connection, "campaign.cancel", "campaign", job.campaign_id, {"ingest": "discarded"})
    return True


def discard_for_campaign(connection: Connection, campaign_id: int) -> None:
    """The campaign is cancelled: its job, if not done, stops at its next chunk."""
    connection.execute(update(IngestJob).where(IngestJob.campaign_id == campaign_id, IngestJob.status.in_(
        (S.QUEUED, S.RUNNING, S.FAILED))).values(status=S.DISCARDED, lease_token=None, lease_until=None,
                                                  updated_at=utcnow(), finished_at=utcnow()))


def stalled(engine: Engine) -> list[int]:
    """Open jobs nobody is running: queued or leased, with the lease lapsed, untouched for a lease's length
    (the process running it died, or the broker lost its task). Each is marked touched, so a sweep hands
    it out once per lease length."""
    now = utcnow()
    quiet_since = now - timedelta(seconds=lease_seconds())
    with engine.begin() as connection:
        ids = connection.execute(select(IngestJob.id).where(
            IngestJob.status.in_(OPEN), (IngestJob.lease_until.is_(None)) | (IngestJob.lease_until < now),
            IngestJob.updated_at < quiet_since)).scalars().all()
        if ids:
            connection.execute(update(IngestJob).where(IngestJob.id.in_(ids), IngestJob.updated_at < quiet_since)
                               .values(updated_at=now))
    return list(ids)


def progress(engine: Engine, job_id: int) -> Progress | None:
    return _progress(engine, IngestJob.id == job_id)


def for_campaign(engine: Engine, campaign_id: int) -> Progress | None:
    return _progress(engine, IngestJob.campaign_id == campaign_id)


def _progress(engine: Engine, which) -> Progress | None:
    with engine.connect() as connection:
        job = connection.execute(select(IngestJob).where(which)).one_or_none()
    if job is None:
        return None
    return Progress(id=job.id, campaign_id=job.campaign_id, status=job.status, rows=job.rows, valid=job.valid,
                    skipped=job.skipped, error=job.error)
