"""A campaign's life, in listmonk's words: draft, scheduled, running, paused (with a reason), finished,
cancelled. Launch, pause, resume, cancel and retry are here; the pacer starts scheduled campaigns when
their time comes and finishes running ones when no message can move any more.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from campaigns import audit, dispatch, failover
from campaigns.db import get_engine, session_scope
from campaigns.errors import BlastError, Conflict, NotFound
from campaigns.models import Account, Campaign, IngestJob, Message, utcnow
from campaigns.settings import AccountConfig, get_account
from campaigns.states import HELD_CODE, CampaignStatus, MessageState, PauseReason
from campaigns.transitions import move_campaigns, transition

log = logging.getLogger("blast.lifecycle")
C = CampaignStatus
M = MessageState
# `blast retry ID --reason unknown`: the messages whose outcome was lost, failed or held for the operator.
UNKNOWN_REASON = "unknown"


def sync_account(session, account: AccountConfig) -> None:
    """Mirror the account's public facts (never its credentials) into the database."""
    row = session.get(Account, account.name)
    if row is None:
        session.add(Account(name=account.name, provider=account.provider, rate=account.rate))
    else:
        row.provider, row.rate, row.updated_at = account.provider, account.rate, utcnow()
        session.add(row)


def parse_when(value: str | None) -> datetime | None:
    """`--at`: an ISO 8601 time; without an offset it is the machine's local time. None or "now": now."""
    if value is None or value.strip().lower() == "now":
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BlastError(f"--at {value!r} is not a time (use ISO 8601, e.g. 2026-12-01T09:00 or "
                         f"2026-12-01T09:00+03:00)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time of this machine
    return moment.astimezone(UTC)


def create_campaign(*, account: AccountConfig, template: str, name: str | None, media_url: str | None,
                    region: str, source_file: str | None, options: dict | None, quiet_hours: str | None = None,
                    schedule_id: int | None = None, occurrence: str | None = None, ingest: dict | None = None
                    ) -> tuple[int, int | None]:
    """A draft campaign, and with `ingest` (campaigns.ingest.jobs.add's options) its ingest job of
    `source_file`, in one transaction. Returns (campaign id, job id or None)."""
    from campaigns.ingest import jobs

    with session_scope() as session:
        sync_account(session, account)
        campaign = Campaign(
            name=name or (Path(source_file).stem if source_file else "campaign"),
            account_name=account.name, template=template, media_url=media_url, region=region.upper(),
            source_file=source_file, options=json.dumps(options or {}), quiet_hours=quiet_hours,
            schedule_id=schedule_id, occurrence=occurrence,
        )
        session.add(campaign)
        session.flush()
        job = jobs.add(session, campaign.id, source_file, **ingest) if ingest is not None else None
        if ingest is not None:  # a launch (a schedule's firing is recorded when it starts: schedule_start)
            starts = ingest.get("start", True)
            at = ingest.get("launch_at")
            audit.record(session, "campaign.launch" if starts else "campaign.create", "campaign", campaign.id,
                         {"name": campaign.name, "account": account.name,
                          **({"at": at.isoformat()} if starts and at is not None else {})})
        session.commit()
        return campaign.id, (job.id if job is not None else None)


def launch(path: str | Path, *, account_name: str, template: str, name: str | None = None,
           media_url: str | None = None, at: datetime | None = None, region: str = "UG",
           phone_column: str | None = None, options: dict | None = None, start: bool = True,
           quiet_hours: str | None = None, background: bool = False, discard_file: bool = False,
           display_name: str | None = None, on_progress=None, canary: str | None = None,
           canary_auto: bool = False) -> tuple[int, dict]:
    """Create a campaign from a contact file and start it now or at `at`. Returns (id, ingest report).

    The file is read by the campaign's ingest job (campaigns.ingest.jobs): here, unless `background`, when a
    worker reads it (task `blast.ingest`) and the report is empty. Read here, a file that cannot be read
    leaves no campaign behind, and neither does an interruption (Ctrl-C); a process killed mid-ingest leaves
    the job to a worker, which goes on where it stopped. `on_progress(report, fraction read)` follows each chunk.
    `quiet_hours` ("21:00-08:00", in each recipient's local time; see campaigns.quiet_hours): a message
    due inside its recipient's window waits for the window's end. `discard_file`: delete the file once read.
    `display_name`: the file's name as the operator knows it, in the reasons a file is refused.
    `canary` ("50", or "5%" of the valid recipients) sends that first slice, then pauses (reason canary) until
    released, or with `canary_auto` judges the slice and releases it by itself (campaigns.canary).
    """
    from campaigns import canary as canaries
    from campaigns import quiet_hours as quiet
    from campaigns.ingest import jobs

    account = get_account(account_name)
    window = quiet.normalise(quiet_hours)
    path = Path(path)
    campaign_id, job_id = create_campaign(
        account=account, template=template, name=name, media_url=media_url, region=region,
        source_file=str(path), options=options, quiet_hours=window,
        ingest=dict(phone_column=phone_column, launch_at=at, start=start, discard_file=discard_file,
                    display_name=display_name, canary=canaries.check_spec(canary), canary_auto=canary_auto))
    if background:
        dispatch.start_ingest(job_id)
        return campaign_id, {}
    engine = get_engine()
    try:
        jobs.run(engine, job_id, on_progress=on_progress)
    except BaseException:
        _delete_campaign(campaign_id, launched=True)
        raise
    with engine.connect() as connection:
        report = connection.execute(select(IngestJob.report).where(IngestJob.id == job_id)).scalar_one()
    return campaign_id, json.loads(report)


def quiet_timing(window: str | None, timing=None):
    """The ingest's per-row timing, asked to keep each recipient's zone when there are quiet hours."""
    from campaigns.ingest.timing import RowTiming

    if window is None:
        return timing
    timing = timing or RowTiming(now=utcnow())
    timing.zones = True
    return timing


def ingest_into(campaign_id: int, path: str | Path, *, account: AccountConfig, template: str, region: str,
                media_url: str | None = None, options: dict | None = None, phone_column: str | None = None,
                timing=None, engine=None, **reading):
    """Read a contact file into an existing (draft) campaign's messages; returns the ingest report. `reading`:
    more of campaigns.ingest.load_messages' options (sheet, resume, on_chunk)."""
    from campaigns import ingest, service_window

    kind = (options or {}).get("kind") or ("media" if media_url else "text")
    engine = engine or get_engine()
    return ingest.load_messages(engine, campaign_id, Path(path), region=region, template=template,
                                provider=account.provider, kind=kind, phone_column=phone_column, timing=timing,
                                window=service_window.for_ingest(engine, account, kind), **reading)


def _delete_campaign(campaign_id: int, *, launched: bool = False) -> None:
    """The campaign and its rows go; `launched`: its launch was recorded, so the audit log says it went."""
    from sqlalchemy import delete

    with get_engine().begin() as connection:
        connection.execute(delete(Message).where(Message.campaign_id == campaign_id))
        connection.execute(delete(IngestJob).where(IngestJob.campaign_id == campaign_id))
        connection.execute(delete(Campaign).where(Campaign.id == campaign_id))
        if launched:
            audit.record(connection, "campaign.discard", "campaign", campaign_id)


def start_draft(connection, campaign_id: int, at: datetime | None = None) -> str | None:
    """draft -> running (now) or scheduled (at a later time), in the caller's transaction; the new status, or
    None when the campaign is not a draft (any more)."""
    now = utcnow()
    later = at is not None and at > now
    status = C.SCHEDULED if later else C.RUNNING
    changed = move_campaigns(connection, where=[Campaign.id == campaign_id], expected=C.DRAFT, to=status,
                             launch_at=at or now, started_at=None if later else now)
    return status if changed else None


def schedule_start(campaign_id: int, at: datetime | None = None) -> str:
    """draft -> running (now) or scheduled (at a later time)."""
    with get_engine().begin() as connection:
        status = start_draft(connection, campaign_id, at)
        if status is not None:
            audit.record(connection, "campaign.launch", "campaign", campaign_id,
                         {"at": at.isoformat()} if at is not None else None)
    if status is None:
        raise Conflict(f"campaign {campaign_id} is not a draft")
    if status == C.RUNNING:
        kick(campaign_id)
    return status


def _get(session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign with id {campaign_id}")
    return campaign


# The statuses each operator action starts from (the web app's buttons ask these before offering them).
PAUSABLE = (C.RUNNING, C.SCHEDULED)
RESUMABLE = (C.PAUSED,)
CANCELLABLE = (C.DRAFT, C.SCHEDULED, C.RUNNING, C.PAUSED)


def can_retry(status: str, *, failed: int) -> bool:
    return failed > 0 and status != C.CANCELLED


def _set_status(campaign_id: int, *, allowed: tuple[str, ...], to: str, action: str, **values) -> Campaign:
    """The campaign moved from one of `allowed` to `to`, and `action` recorded in the audit log, together."""
    with session_scope() as session:
        campaign = _get(session, campaign_id)
        if campaign.status not in allowed:
            raise Conflict(f"campaign {campaign_id} is {campaign.status}; cannot make it {to}")
        if not move_campaigns(session, where=[Campaign.id == campaign_id], expected=allowed, to=to, **values):
            raise Conflict(f"campaign {campaign_id} changed meanwhile; try again")
        why = {"reason": str(values["reason"])} if "reason" in values else {}
        audit.record(session, action, "campaign", campaign_id, {"from": str(campaign.status), **why})
        session.commit()
        return _get(session, campaign_id)


def pause(campaign_id: int, reason: PauseReason = PauseReason.USER, detail: str | None = None) -> None:
    """No new message starts within a second; messages in flight finish; queued ones go back to pending."""
    _set_status(campaign_id, allowed=PAUSABLE, to=C.PAUSED, action="campaign.pause", reason=PauseReason(reason),
                detail=detail)
    with get_engine().begin() as connection:
        queued = connection.execute(
            select(Message.id).where(Message.campaign_id == campaign_id, Message.state == M.QUEUED)
        ).scalars().all()
        transition(connection, queued, expected=M.QUEUED, to=M.PENDING)


def resume(campaign_id: int) -> None:
    """Running again; an answer a gateway gave before now (quota, auth, content) never pauses it again."""
    from campaigns import canary

    with session_scope() as session:
        held_for_its_canary = _get(session, campaign_id).pause_reason == PauseReason.CANARY
    # a pause for the canary is released with it: the rest of the list may go out (another pause's resume
    # during the slice keeps the slice)
    _set_status(campaign_id, allowed=RESUMABLE, to=C.RUNNING, action="campaign.resume", resumed_at=utcnow(),
                **(canary.RELEASED if held_for_its_canary else {}))
    with get_engine().begin() as connection:  # the operator says try again: its accounts may be fallbacks again
        failover.forget_stops(connection, campaign_id)
    kick(campaign_id)


def cancel(campaign_id: int) -> int:
    """The campaign ends now: every message not yet sent is cancelled (and a draft's list stops being read).
    Returns how many."""
    from campaigns.ingest import jobs

    _set_status(campaign_id, allowed=CANCELLABLE, to=C.CANCELLED, action="campaign.cancel", finished_at=utcnow())
    with get_engine().begin() as connection:
        jobs.discard_for_campaign(connection, campaign_id)
        ids = connection.execute(
            select(Message.id).where(Message.campaign_id == campaign_id,
                                     Message.state.in_([M.PENDING, M.QUEUED]))
        ).scalars().all()
        return transition(connection, ids, expected=(M.PENDING, M.QUEUED), to=M.CANCELLED)


def retry(campaign_id: int, reason: str | None = None) -> int:
    """Failed messages (all, or those whose error code or reason is `reason`) are sent again. With reason
    `unknown` (or `held`), so are the messages held `unknown` for the operator: the gateway may have them
    and could not be asked, so only the operator sends them again, once each."""
    with session_scope() as session:
        campaign = _get(session, campaign_id)
        if campaign.status == C.CANCELLED:
            raise Conflict(f"campaign {campaign_id} is cancelled")
        query = select(Message.id).where(Message.campaign_id == campaign_id, Message.state == M.FAILED)
        if reason:
            query = query.where((Message.error_code == reason) | (Message.error_reason == reason))
        ids = session.execute(query).scalars().all()
        moved = transition(session, ids, expected=M.FAILED, to=M.PENDING, attempts=0, next_attempt_at=None)
        if reason in (UNKNOWN_REASON, HELD_CODE):
            held = session.execute(select(Message.id).where(
                Message.campaign_id == campaign_id, Message.state == M.UNKNOWN, Message.error_code == HELD_CODE)
            ).scalars().all()
            moved += transition(session, held, expected=M.UNKNOWN, to=M.PENDING, attempts=0, next_attempt_at=None,
                                error_code=None, error_reason=None)
        if moved:
            reopen_finished(session, [campaign_id])
        audit.record(session, "campaign.retry", "campaign", campaign_id,
                     {"messages": moved, **({"reason": reason} if reason else {})})
        session.commit()
    if moved:
        kick(campaign_id)
    return moved


def reopen_finished(connection, campaign_ids) -> None:
    """Finished campaigns (ids, or a select of them) that have messages to send again run again, so the
    pacer sends those: a retry of failed messages, or a late throttling callback."""
    move_campaigns(connection, where=[Campaign.id.in_(campaign_ids)], expected=C.FINISHED, to=C.RUNNING,
                   finished_at=None)


def kick(campaign_id: int) -> None:
    with session_scope() as session:
        campaign = _get(session, campaign_id)
        account_name = campaign.failover_account or campaign.account_name
    try:
        dispatch.kick_pacer(account_name)
    except Exception as error:  # the broker may be down; beat's next round paces it anyway
        log.warning("could not ask for a pacing round now (%s); beat's next round will", type(error).__name__)


def is_over(status: str) -> bool:
    return status in (C.FINISHED, C.CANCELLED)
