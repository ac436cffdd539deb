"""The send path of one task: claim, check the campaign, take rate tokens, call the gateway, classify,
record. Every change of state is conditional, so a redelivered or duplicated task sends nothing.

Database work is batched per task: one UPDATE claims the task's messages, one executemany per outcome
records them, one INSERT records the attempts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import timedelta

from cachetools import TTLCache
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError, OperationalError

from campaigns import approved_templates, failover, spikes
from campaigns.db import get_engine
from campaigns.models import Attempt, Campaign, Message, utcnow
from campaigns.settings import AccountConfig, get_account, get_settings
from campaigns.states import CampaignStatus, MessageState, Outcome, PauseReason
from campaigns.transitions import move_campaigns, transition, transition_each
from workers import fanout, retry_policy
from workers.providers.base import UNDOCUMENTED_CODE, SlotMissed, answer_came_at, departed_at

log = logging.getLogger("blast.send")

# A pause or cancel reaches running send tasks within this many seconds.
STATUS_TTL_SECONDS = 0.5
# The longest a worker thread waits for rate tokens before handing messages back to pending.
MAX_TOKEN_WAIT_SECONDS = 2.0
# A message handed back for lack of tokens (or a paused campaign) waits this long before the pacer
# picks it again.
HAND_BACK_DELAY_SECONDS = 0.5
# Bookings in a row in which every slot was missed, after which a task hands its messages back to pending.
BOOKING_ROUNDS = 4
# Characters of an undocumented answer kept in the attempt and in the pause's detail.
RAW_KEPT = 400
# How long a task keeps trying to record the gateway's answers while the database is unreachable.
RECORD_PATIENCE_SECONDS = 120.0
# Only answers this recent count towards a run of undocumented ones.
STREAK_HORIZON = timedelta(hours=1)

M = MessageState
RECORDABLE = (M.SENDING, M.UNKNOWN)  # the reconciler may have marked a slow send unknown meanwhile


def _recordable(state: MessageState) -> tuple[MessageState, ...]:
    return (M.SENDING,) if state in (M.UNKNOWN, M.CANCELLED) else RECORDABLE


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    id: int
    status: str
    account_name: str
    kind: str
    options: dict = field(default_factory=dict)


_cache: TTLCache[int, CampaignInfo] = TTLCache(maxsize=4096, ttl=STATUS_TTL_SECONDS)
_cache_lock = threading.Lock()  # cachetools' caches are not thread-safe


def campaign_info(campaign_id: int, *, engine, fresh: bool = False) -> CampaignInfo | None:
    """The campaign's status and sending options, re-read at most every STATUS_TTL_SECONDS."""
    if not fresh:
        with _cache_lock:
            cached = _cache.get(campaign_id)
        if cached is not None:
            return cached
    with engine.connect() as connection:
        row = connection.execute(
            select(Campaign.status, failover.current_account().label("account_name"), Campaign.options,
                   Campaign.media_url)
            .where(Campaign.id == campaign_id)
        ).first()
    if row is None:
        return None
    options = json.loads(row.options or "{}")
    if row.media_url:
        options.setdefault("media_url", row.media_url)
    kind = options.pop("kind", None) or ("media" if row.media_url else "text")
    info = CampaignInfo(campaign_id, row.status, row.account_name, kind, options)
    with _cache_lock:
        _cache[campaign_id] = info
    return info


def forget_campaign(campaign_id: int) -> None:
    with _cache_lock:
        _cache.pop(campaign_id, None)


def callback_url(account: AccountConfig) -> str | None:
    """Where gateways that take a URL per message post status (Devino): the web app's hook."""
    from campaigns.hooks import hook_url

    return hook_url(account)


def hand_back(engine, campaign_id: int, message_ids: list[int], status: str) -> None:
    """Queued messages of a campaign that is not running go back (or are cancelled with it)."""
    with engine.begin() as connection:
        if status == CampaignStatus.CANCELLED:
            transition(connection, message_ids, expected=M.QUEUED, to=M.CANCELLED)
        else:
            transition(connection, message_ids, expected=M.QUEUED, to=M.PENDING)


def send_messages(campaign_id: int, message_ids: list[int], *, engine=None, limiter=None) -> dict[str, int]:
    """Send the given messages of one campaign; returns a count per outcome (for logs and tests)."""
    from workers.providers import client_for
    from workers.rate_limits import get_limiter

    engine = engine or get_engine()
    limiter = limiter or get_limiter()
    info = campaign_info(campaign_id, engine=engine)
    if info is None:
        return {}
    if info.status != CampaignStatus.RUNNING:
        hand_back(engine, campaign_id, message_ids, info.status)
        return {"handed_back": len(message_ids)}
    account = get_account(info.account_name)
    columns = [*CLAIMED_COLUMNS]
    if info.options.get("slots"):  # a template whose parameters come from each recipient's columns
        columns.append(Message.variables)
    claimed = claim(engine, message_ids, columns, account_name=account.name)
    if not claimed:
        return {}
    client = client_for(account)
    results: list[tuple] = []
    unsent: list = []
    later: list[tuple] = []  # (row, seconds): recipients messaged too recently (workers/rate_limits/spacing.py)
    admitted: list = []
    try:
        admitted, later = _spaced(claimed, account)
        _send_claimed(client, admitted, campaign_id, info, account, engine, limiter, results, unsent)
    except Exception as error:  # the database or Redis went away mid-task: what was answered is recorded,
        # what was never tried goes back to pending; nothing is left `sending` for the reconciler to doubt
        log.warning("send task for campaign %s stopped early (%s): recording what is known",
                    campaign_id, type(error).__name__)
        tried = {row.id for row, _answer, _at in results} | {row.id for row in unsent} | {
            row.id for row, _wait in later}
        unsent.extend(row for row in claimed if row.id not in tried)
    _settle_spacing(admitted, results)
    return record_durably(engine, campaign_id, account, results, unsent, later)


# Outcomes after which the recipient may have the message: what the pair rate and the daily cap count.
TAKEN = {Outcome.ACCEPTED.value, Outcome.AMBIGUOUS.value}


def _spaced(claimed, account: AccountConfig) -> tuple[list, list[tuple]]:
    """The claimed messages whose recipients may have one now, and the others with their seconds to wait."""
    settings = get_settings()
    if not settings.pair_interval_seconds and not settings.daily_cap:
        return list(claimed), []
    from workers.rate_limits.spacing import get_spacing

    # the longest an admitted message may wait before it leaves (each booking round: a slot, then the call)
    hold = BOOKING_ROUNDS * (MAX_TOKEN_WAIT_SECONDS + account.timeout_seconds)
    waits = get_spacing().admit([(row.id, row.phone) for row in claimed],
                                interval=settings.pair_interval_seconds, daily_cap=settings.daily_cap, hold=hold)
    return ([row for row, wait in zip(claimed, waits, strict=True) if wait <= 0],
            [(row, wait) for row, wait in zip(claimed, waits, strict=True) if wait > 0])


def _settle_spacing(admitted, results) -> None:
    """Each admitted recipient's reservation moves to when the gateway answered (taken), or is freed."""
    settings = get_settings()
    if not admitted or (not settings.pair_interval_seconds and not settings.daily_cap):
        return
    from workers.rate_limits.spacing import get_spacing

    answered = {row.id: at.timestamp() for row, answer, at in results if Outcome(answer.outcome).value in TAKEN}
    try:
        get_spacing().settle([(row.id, row.phone, answered.get(row.id)) for row in admitted])
    except Exception as error:  # the reservations expire by themselves: this only keeps them short
        log.warning("spacing not settled (%s): recipients wait out their reservations", type(error).__name__)


def _send_claimed(client, claimed, campaign_id: int, info: CampaignInfo, account: AccountConfig, engine, limiter,
                  results: list, unsent: list) -> None:
    """The calls of one task; fills `results` and `unsent`. One message per call: the task's slots booked in
    one round trip and each call sent at its slot (fanout.py). Batch calls: one after another, each call's
    messages on one slot."""
    from workers.providers import Outbound

    hook = callback_url(account) if getattr(client, "wants_callback_url", False) else None

    def outbound(row) -> Outbound:
        variables = json.loads(row.variables or "{}") if "variables" in row._fields else {}
        return Outbound(message_id=row.id, to=row.phone, text=row.body, kind=info.kind, options=info.options,
                        callback_url=hook, variables=variables)

    batch = max(1, getattr(client, "max_batch", 1))
    if batch == 1:
        _send_each_at_its_slot(claimed, outbound, campaign_id, account, engine, limiter, results, unsent)
        return
    for start in range(0, len(claimed), batch):
        chunk = claimed[start:start + batch]
        if not _running(campaign_id, engine):
            unsent.extend(chunk)
            continue
        with limiter.slots(account.name, rate=account.rate, max_wait=MAX_TOKEN_WAIT_SECONDS, count=len(chunk),
                           together=True) as slots:
            deadline = limiter.wait(slots[0]) if slots else None
        answers = None
        if deadline is not None:
            try:
                answers = client.send_batch([outbound(row) for row in chunk], deadline=deadline)
            except SlotMissed:  # this thread was starved past its slot: nothing was sent
                pass
            _note_departure(limiter, account, slots[0], answered=answers is not None)
        if answers is None:  # refused, or too late for the slot: nothing was sent
            unsent.extend(claimed[start:])
            return
        _answered(chunk, answers, utcnow(), account, limiter, results)


def _send_each_at_its_slot(claimed, outbound, campaign_id: int, account: AccountConfig, engine, limiter,
                           results: list, unsent: list) -> None:
    """Single-message calls, each sent at a booked slot. A gateway that answers within Policy.late (a call
    that overruns the next slot by more than that makes it missed) is called from this thread, one call after
    another, booking in each round only the slots those calls can keep; a slower one has each call sent at its
    slot from a thread of the send pool (fanout.py), the whole task booked at once, so a slow answer never
    makes the next slot late. Messages whose slots were missed (a thread woke up too late, a call overran) are
    booked again together."""
    waiting = list(claimed)
    fruitless, failure = 0, None
    while waiting and fruitless < BOOKING_ROUNDS and _running(campaign_id, engine):
        answer_seconds = answer_times.expected(account.base_url)
        inline = answer_seconds is None or answer_seconds <= limiter.policy.late
        count = min(len(waiting), _calls_in_time(limiter, answer_seconds)) if inline else len(waiting)
        missed, calls = [], []
        with limiter.slots(account.name, rate=account.rate, max_wait=MAX_TOKEN_WAIT_SECONDS, count=count) as slots:
            if not slots:  # no slot within MAX_TOKEN_WAIT_SECONDS: back to pending
                break
            for row, slot in zip(waiting, slots, strict=False):
                deadline = limiter.wait(slot)
                if deadline is None:
                    missed.append(row)
                elif inline:
                    _keep(row, _send_by(slot, deadline, row, outbound, account, campaign_id, engine, limiter),
                          account, limiter, results, missed)
                else:
                    calls.append((row, fanout.pool().submit(_send_by, slot, deadline, row, outbound, account,
                                                            campaign_id, engine, limiter)))
        failure = None
        for row, call in calls:
            try:
                sent = call.result()
            except Exception as error:  # the database went away before this call: it was not sent
                sent, failure = None, error
            _keep(row, sent, account, limiter, results, missed)
        booked = waiting[:len(slots)]
        waiting = missed + waiting[len(slots):]
        if failure is not None:
            break
        fruitless = fruitless + 1 if len(missed) == len(booked) else 0
    unsent.extend(waiting)
    if failure is not None:
        raise failure


def _calls_in_time(limiter, answer_seconds: float | None) -> int:
    """How many calls answering in `answer_seconds` one after another leave within Policy.late of their slots;
    one while the gateway's answer time is not known yet (a slow gateway would make the others miss theirs)."""
    if answer_seconds is None:
        return 1
    return max(1, int(limiter.policy.late / max(answer_seconds, 1e-4)))


def _keep(row, sent, account: AccountConfig, limiter, results: list, missed: list) -> None:
    if sent is None:
        missed.append(row)
    else:
        _answered([row], [sent[0]], sent[1], account, limiter, results)


class AnswerTimes:
    """Per gateway address, the quickest answer among this process's last `kept` calls (seconds; None before
    any: a gateway's first calls are made one at a time from the task's thread, where nothing else inflates the
    time measured).
    The quickest, not the mean: what a busy process adds (threads waiting for the interpreter) varies from
    call to call, the gateway's own latency is in every one."""

    def __init__(self, *, kept: int = 16) -> None:
        self.kept = kept
        self._recent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def expected(self, base_url: str) -> float | None:
        with self._lock:
            recent = self._recent.get(base_url)
            return min(recent) if recent else None

    def add(self, base_url: str, seconds: float) -> None:
        with self._lock:
            self._recent.setdefault(base_url, deque(maxlen=self.kept)).append(seconds)


answer_times = AnswerTimes()


def _send_by(slot, deadline, row, outbound, account: AccountConfig, campaign_id: int, engine,
             limiter):
    """(answer, answered at) for a call that left by `deadline` (time.monotonic()); None when there is no
    deadline (no slot in time), the campaign is no longer running, or the call would leave later."""
    from workers.providers import client_for

    if deadline is None or not _running(campaign_id, engine):
        return None
    started = time.monotonic()
    try:
        answer = client_for(account).send(outbound(row), deadline=deadline)
    except SlotMissed:  # nothing was sent
        answer = None
    _note_departure(limiter, account, slot, answered=answer is not None)
    if answer is None:
        return None
    answer_times.add(account.base_url, time.monotonic() - started)
    return answer, utcnow()


def _note_departure(limiter, account: AccountConfig, slot, *, answered: bool) -> None:
    """Tell the limiter how late after its slot this thread's last call left (or would have, when it was not
    written) and, when it was answered, how long the answer took: what sizes the next bookings' margins."""
    left, came = departed_at(), answer_came_at()
    if left is None:
        return
    limiter.left(slot, left)
    if answered:
        limiter.answered(account.name, (time.monotonic() if came is None else came) - left)


def _running(campaign_id: int, engine) -> bool:
    current = campaign_info(campaign_id, engine=engine)
    return current is not None and current.status == CampaignStatus.RUNNING


def _answered(rows, answers, answered_at, account: AccountConfig, limiter, results: list) -> None:
    """Keep a call's answers (one time per call: a batch call's answer counts once in a streak); a throttling
    answer slows the account down for every process at once."""
    for row, answer in zip(rows, answers, strict=True):
        results.append((row, answer, answered_at))
    if any(answer.outcome == Outcome.THROTTLED and not answer.recipient_only for answer in answers):
        limiter.throttled(account.name, rate=account.rate)


CLAIMED_COLUMNS = (Message.id, Message.phone, Message.body, Message.attempts)


def claim(engine, message_ids: list[int], columns=CLAIMED_COLUMNS, *, account_name: str) -> list:
    """queued → sending for this task, stamped with the account they are handed to (campaigns.failover); returns
    the claimed rows (`columns` of them).

    The database can take the claim and lose the connection before saying so (a restart between COMMIT and
    its answer). The claim is then made again with the same timestamp, and rows already `sending` with
    exactly that `updated_at` are this task's own: without that they would sit in `sending`, never sent,
    until the reconciler doubted them. Another task's claim of the same message carries its own timestamp."""
    stamp = utcnow()
    attempts = 0

    def claim_once():
        nonlocal attempts
        attempts += 1
        with engine.begin() as connection:
            own = [] if attempts == 1 else connection.execute(
                select(*columns).where(Message.id.in_(message_ids), Message.state == M.SENDING.value,
                                               Message.updated_at == stamp)).all()
            return own + transition(connection, message_ids, expected=M.QUEUED, to=M.SENDING, now=stamp,
                                    account_name=account_name, returning=list(columns))

    return while_database_returns(claim_once, what=f"claiming {len(message_ids)} messages")


def while_database_returns(work, *, what: str):
    """`work()`, tried again while the database is unreachable (a restart, a failover) for up to
    RECORD_PATIENCE_SECONDS; any other error is raised at once."""
    deadline = time.monotonic() + RECORD_PATIENCE_SECONDS
    delay = 0.1
    while True:
        try:
            return work()
        except DBAPIError as error:
            unreachable = error.connection_invalidated or isinstance(error, OperationalError)
            if not unreachable or time.monotonic() + delay > deadline:
                raise
            log.warning("%s waits for the database (%s)", what, type(error).__name__)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def record_durably(engine, campaign_id: int, account: AccountConfig, results: list, unsent: list,
                   spaced: list[tuple] = ()) -> dict[str, int]:
    """`record`, tried again while the database is unreachable: the gateway's answers exist only in this
    task's memory."""
    return while_database_returns(lambda: record(engine, campaign_id, account, results, unsent, spaced),
                                  what=f"recording {len(results)} answers")


def record(engine, campaign_id: int, account: AccountConfig, results: list, unsent: list,
           spaced: list[tuple] = ()) -> dict[str, int]:
    """Write every answer back in one transaction: conditional updates per outcome, attempts appended. `unsent`
    go back to pending at once, `spaced` ((row, seconds)) when their recipient may have a message."""
    now = utcnow()
    by_state: dict[MessageState, list[dict]] = defaultdict(list)
    attempts: list[dict] = []
    counts: dict[str, int] = defaultdict(int)
    pause_reason = None
    paused_by_answer_at = None  # the latest answer that pauses: only one after the last resume does
    content_codes: dict[str, object] = {}
    undocumented = False
    accepted_at = None  # the latest accepted answer: the account carries messages (a stop of it is over)
    held_codes: dict[str, object] = {}  # the gateway holds the campaign's template (SendResult.template_held)
    for row, answer, answered_at in results:
        outcome = Outcome(answer.outcome)
        undocumented = undocumented or answer.undocumented
        counts[outcome.value] += 1
        held = answer.template_held
        attempts_after = row.attempts + (1 if retry_policy.uses_attempt(outcome, held=held) else 0)
        state = retry_policy.next_state(outcome, attempts_after=attempts_after, account=account, code=answer.code,
                                        held=held)
        values = {"id": row.id, "attempts": attempts_after, "error_code": answer.code,
                  "error_reason": _reason(answer)}
        if state == M.SUBMITTED:
            values.update(provider_message_id=answer.provider_message_id, cost=answer.cost,
                          error_code=None, error_reason=None)
        elif state == M.PENDING:
            values["next_attempt_at"] = retry_policy.retry_at(outcome, now=now, attempts_after=attempts_after,
                                                              account=account, retry_after=answer.retry_after)
        by_state[state].append(values)
        attempts.append({"message_id": row.id, "at": answered_at, "outcome": outcome.value, "code": answer.code,
                         "detail": _attempt_detail(answer)})
        if outcome in retry_policy.PAUSES_ACCOUNT:
            pause_reason = pause_reason or retry_policy.PAUSES_ACCOUNT[outcome]
            paused_by_answer_at = max(paused_by_answer_at or answered_at, answered_at)
        if outcome == Outcome.ACCEPTED:
            accepted_at = max(accepted_at or answered_at, answered_at)
        if held:
            key = answer.code or "content"
            held_codes[key] = max(held_codes.get(key) or answered_at, answered_at)
        elif outcome == Outcome.CONTENT and answer.code:
            content_codes[answer.code] = max(content_codes.get(answer.code) or answered_at, answered_at)
    later = now + timedelta(seconds=HAND_BACK_DELAY_SECONDS)
    for row in unsent:
        by_state[M.PENDING].append({"id": row.id, "attempts": row.attempts, "error_code": None,
                                    "error_reason": None, "next_attempt_at": later})
    counts["handed_back"] += len(unsent)
    for row, wait in spaced:
        by_state[M.PENDING].append({"id": row.id, "attempts": row.attempts, "error_code": None, "error_reason": None,
                                    "next_attempt_at": now + timedelta(seconds=wait)})
    if spaced:
        counts["spaced"] += len(spaced)
    with engine.begin() as connection:
        if by_state.get(M.PENDING) and connection.execute(select(Campaign.status).where(
                Campaign.id == campaign_id)).scalar_one_or_none() == CampaignStatus.CANCELLED:
            # cancelled meanwhile: what was not sent is cancelled with it, never left pending
            by_state[M.CANCELLED] = [{key: value for key, value in row.items() if key != "next_attempt_at"}
                                     for row in by_state.pop(M.PENDING)]
        for state, rows in by_state.items():
            _record_state(connection, rows, state, now)
        if attempts:
            connection.execute(insert(Attempt), attempts)
        if accepted_at is not None and failover.is_a_fallback(account.name):  # no statement for the others
            failover.clear_stop(connection, account.name, answered_at=accepted_at)
        if pause_reason:
            pause_account_campaigns(connection, account, pause_reason, _pause_detail(results),
                                    answered_at=paused_by_answer_at)
        for code, answered_at in content_codes.items():
            _pause_if_content_repeats(connection, campaign_id, code, answered_at)
        for code, answered_at in held_codes.items():
            _pause_while_the_template_is_held(connection, campaign_id, code, answered_at)
        changed = undocumented and _pause_if_gateway_changed(connection, account, results)
        outage = _stop_on_an_outage(connection, account, results)
        spiked = (counts.keys() & SPIKE_OUTCOMES) and _pause_on_a_spike(connection, campaign_id, account)
    if pause_reason or content_codes or held_codes or changed or spiked or outage:
        forget_campaign(campaign_id)
    if (pause_reason or changed or outage) and account.fallback:
        failover.kick([account.fallback])
    return dict(counts)


def _record_state(connection, rows: list[dict], state: MessageState, now) -> None:
    # executemany needs the same keys in every row: group by key set
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    for group in groups.values():
        transition_each(connection, group, expected=_recordable(state), to=state, now=now)


def _reason(answer) -> str | None:
    return answer.detail[:500] if answer.detail else None


def _attempt_detail(answer) -> str | None:
    """The reason; for an answer nobody documented, also what came (secrets already masked)."""
    if not answer.undocumented:
        return _reason(answer)
    return f"{answer.detail}: {json.dumps(answer.raw, default=str)[:RAW_KEPT]}"


def _pause_detail(results) -> str:
    for _row, answer, _at in results:
        if Outcome(answer.outcome) in retry_policy.PAUSES_ACCOUNT:
            return f"{answer.code or ''} {answer.detail or ''}".strip()[:500]
    return ""


def pause_account_campaigns(connection, account: AccountConfig, reason, detail: str, *, answered_at=None) -> int:
    """The account stopped (quota, auth, gateway_changed): every running campaign sending through it fails over
    to its fallback (campaigns.failover), or pauses with the reason, unless it was resumed after the answer that
    stops it was given (`answered_at`). Returns how many failed over or paused."""
    return sum(failover.stop_account(connection, account, reason, detail, answered_at=answered_at).values())


def _stop_on_an_outage(connection, account: AccountConfig, results) -> bool:
    """An account with a fallback whose last `failover_after_transient` answers were transient is out: its
    campaigns fail over (without a usable fallback, they go on retrying as before). Returns whether any did."""
    if not account.fallback or not results:
        return False
    if not failover.count_transients(connection, account, [Outcome(answer.outcome) for _r, answer, _a in results]):
        return False
    detail = f"{account.failover_after_transient} transient answers in a row"
    answered_at = max(at for _row, _answer, at in results)
    return failover.stop_account(connection, account, failover.OUTAGE, detail,
                                 answered_at=answered_at)["failed_over"] > 0


def _pause_if_gateway_changed(connection, account: AccountConfig, results) -> bool:
    """The account's last GATEWAY_CHANGED_AFTER answers (a batch call's counts once), across its campaigns
    and workers, were all undocumented: its running campaigns pause with reason gateway_changed and the
    last raw answer. Returns whether any paused."""
    window = retry_policy.GATEWAY_CHANGED_AFTER
    answers = connection.execute(
        select(Attempt.at, func.min(Attempt.code).label("low"), func.max(Attempt.code).label("high"))
        .join(Message, Message.id == Attempt.message_id)
        .join(Campaign, Campaign.id == Message.campaign_id)
        .where(failover.sent_through(account.name), Attempt.at >= utcnow() - STREAK_HORIZON)
        .group_by(Attempt.at).order_by(Attempt.at.desc()).limit(window)
    ).all()
    in_a_row = [a for a in answers if _undocumented(a.low) and _undocumented(a.high)]
    if len(answers) < window or len(in_a_row) < window:
        return False
    last = next(answer for _row, answer, _at in reversed(results) if answer.undocumented)
    detail = (f"{window} answers in a row that the gateway's document does not list; the last: "
              f"{last.code}: {json.dumps(last.raw, default=str)[:RAW_KEPT]}")
    answered_at = max(at for _row, answer, at in results if answer.undocumented)
    return pause_account_campaigns(connection, account, PauseReason.GATEWAY_CHANGED, detail,
                                   answered_at=answered_at) > 0


def _undocumented(code: str | None) -> bool:
    return bool(code) and code.startswith(UNDOCUMENTED_CODE)


# Answers that may make a spike (campaigns.spikes): a batch without one is not judged.
SPIKE_OUTCOMES = {Outcome.RECIPIENT.value, Outcome.CONTENT.value, Outcome.THROTTLED.value}


def _pause_on_a_spike(connection, campaign_id: int, account: AccountConfig) -> bool:
    spike = spikes.answers_spike(connection, campaign_id, account)
    return spike is not None and spikes.pause(connection, campaign_id, spike)


def _pause_while_the_template_is_held(connection, campaign_id: int, code: str, answered_at) -> None:
    move_campaigns(connection, where=[Campaign.id == campaign_id, failover.answered_since_resume(answered_at)],
                   expected=CampaignStatus.RUNNING, to=CampaignStatus.PAUSED, reason=PauseReason.CONTENT,
                   detail=approved_templates.held_detail(code))


def _pause_if_content_repeats(connection, campaign_id: int, code: str, answered_at) -> None:
    repeated = connection.execute(
        select(func.count()).select_from(Message).where(
            Message.campaign_id == campaign_id, Message.state == M.FAILED, Message.error_code == code)
    ).scalar_one()
    if repeated >= retry_policy.CONTENT_PAUSE_THRESHOLD:
        move_campaigns(connection, where=[Campaign.id == campaign_id, failover.answered_since_resume(answered_at)],
                       expected=CampaignStatus.RUNNING, to=CampaignStatus.PAUSED, reason=PauseReason.CONTENT,
                       detail=f"gateway code {code} for {repeated} recipients")

