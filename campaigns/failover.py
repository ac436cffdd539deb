"""Failover: an account that stops (quota, auth, gateway_changed, or an outage: `failover_after_transient`
transient answers in a row) hands its running campaigns to its `fallback` (blast.toml), which may be on another
gateway. A campaign that fails over keeps running; one whose fallback is missing, stopped itself, cannot carry its
kind of message, or would bring the chain back round pauses as without failover (an outage alone pauses nothing).

Each recipient gets the message once. The rule:

- A message is stamped with the account a worker hands it to, when it is claimed (`queued -> sending`):
  `message.account_name` (None: never handed to one, or sent before failover existed, through its campaign's own
  account). From then on its answer, delivery reports, callbacks and reconciliation are matched on that account
  alone (`sent_through`, `message_account`).
- What moves is the campaign (`campaign.failover_account`): its messages never handed to a gateway (pending,
  queued) go out through the fallback, re-rendered and re-checked against the fallback gateway's limits (one it
  cannot carry is skipped with the reason), and so do messages the stopped gateway refused outright (a quota or
  auth answer: back to pending, nothing sent).
- What never moves: a message `sending`, `unknown` (an ambiguous answer: the gateway may have it) or accepted
  keeps the account it was handed to, and is resolved from that gateway's records as without failover; it goes
  out again (through the campaign's account of the time) only when those records say it never arrived.

The chain is followed from the campaign's own account, each account at most once: A -> B -> C, never back to A.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, case, func, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from campaigns import audit, gateway_limits, templates
from campaigns.db import is_postgres
from campaigns.models import Account, Campaign, Message, utcnow
from campaigns.settings import AccountConfig, load_accounts
from campaigns.states import CampaignStatus, MessageState, PauseReason
from campaigns.transitions import move_campaigns, transition, transition_each
from campaigns.webhooks import outbox, subscriptions

log = logging.getLogger("blast.failover")
M = MessageState
OUTAGE = "outage"  # an account's stop reason after transient answers in a row (no PauseReason: it pauses nothing)
# The stops a fallback takes over; the others pause the campaign as before.
STOPS = (PauseReason.QUOTA, PauseReason.AUTH, PauseReason.GATEWAY_CHANGED, OUTAGE)
CHUNK = 5000  # pending messages re-checked per statement


# ------------------------------------------------------------------ which account a message went through


def message_account():
    """SQL (Campaign joined): the account a message was handed to, else its campaign's own."""
    return func.coalesce(Message.account_name, Campaign.account_name)


def sent_through(account_name: str):
    """SQL (Campaign joined): the messages handed to `account_name` (stamped, or unstamped on a campaign of it)."""
    return or_(Message.account_name == account_name,
               and_(Message.account_name.is_(None), Campaign.account_name == account_name))


def current_account():
    """SQL: the account a campaign's messages go through now."""
    return func.coalesce(Campaign.failover_account, Campaign.account_name)


def answered_since_resume(answered_at):
    """Campaigns never resumed, or resumed before `answered_at` (an answer from before a resume is old news)."""
    if answered_at is None:
        return true()
    return or_(Campaign.resumed_at.is_(None), Campaign.resumed_at < answered_at)


# ------------------------------------------------------------------ the chain


def chain(origin: str, accounts: dict[str, AccountConfig]) -> list[str]:
    """`origin` and the fallbacks after it, each at most once (A, B, C for A -> B -> C -> A)."""
    path = [origin]
    while (account := accounts.get(path[-1])) is not None and account.fallback and account.fallback not in path:
        path.append(account.fallback)
    return path


def next_account(origin: str, stopped: str, accounts: dict[str, AccountConfig]) -> str | None:
    """The account after `stopped` on the chain from a campaign's own account `origin`, or None."""
    path = chain(origin, accounts)
    if stopped not in path or path.index(stopped) + 1 == len(path):
        return None
    return path[path.index(stopped) + 1]


def campaign_kind(options: str | None, media_url: str | None) -> str:
    """A campaign's kind of message, as its send tasks read it."""
    return json.loads(options or "{}").get("kind") or ("media" if media_url else "text")


@dataclass(frozen=True, slots=True)
class Choice:
    account: AccountConfig | None
    why_not: str | None = None  # why there is none to fail over to


def fallback_for(connection, campaign, stopped: str, accounts: dict[str, AccountConfig]) -> Choice:
    """Where a campaign whose messages went through `stopped` goes now, or why nowhere."""
    from campaigns.dispatch import gateway_spec

    name = next_account(campaign.account_name, stopped, accounts)
    wanted = accounts.get(stopped).fallback if stopped in accounts else None
    if name is None:
        if wanted is None:
            return Choice(None, None)
        return Choice(None, f"fallback {wanted!r} " + ("is not configured" if wanted not in accounts
                                                       else "was already on this campaign's chain"))
    account = accounts[name]
    kind = campaign_kind(campaign.options, campaign.media_url)
    if kind not in gateway_spec(account.provider).kinds:
        return Choice(None, f"fallback {name!r} ({account.provider}) cannot send {kind} messages")
    stop = connection.execute(select(Account.stop_reason).where(Account.name == name,
                                                                Account.stopped_at.is_not(None))).first()
    if stop is not None:
        return Choice(None, f"fallback {name!r} is stopped too ({stop.stop_reason})")
    return Choice(account)


# ------------------------------------------------------------------ an account stops


def stop_account(connection, account: AccountConfig, reason: str, detail: str, *, answered_at=None) -> dict[str, int]:
    """`account` stopped for `reason` (one of STOPS) at `answered_at`: it is marked stopped, and each running
    campaign whose messages go through it (unless resumed since) fails over to the next account of its chain, or
    pauses with the reason (an outage pauses nothing). Returns {"failed_over", "paused"}. In the caller's
    transaction; the caller kicks the fallbacks' pacers after the commit (`kick`)."""
    mark_stopped(connection, account.name, reason)
    campaigns = connection.execute(
        select(Campaign.id, Campaign.name, Campaign.account_name, Campaign.template, Campaign.options,
               Campaign.media_url)
        .where(current_account() == account.name, Campaign.status == CampaignStatus.RUNNING,
               answered_since_resume(answered_at))
        .order_by(Campaign.id)).all()
    counts = {"failed_over": 0, "paused": 0}
    if not campaigns:
        return counts
    accounts = load_accounts()
    for campaign in campaigns:
        choice = fallback_for(connection, campaign, account.name, accounts)
        if choice.account is not None:
            counts["failed_over"] += fail_over(connection, campaign, account, choice.account, reason=reason)
        elif reason != OUTAGE:
            why = f"{detail}; {choice.why_not}" if choice.why_not else detail
            counts["paused"] += move_campaigns(
                connection, where=[Campaign.id == campaign.id, current_account() == account.name],
                expected=CampaignStatus.RUNNING, to=CampaignStatus.PAUSED, reason=PauseReason(reason),
                detail=why[:500] or None)
    return counts


def fail_over(connection, campaign, stopped: AccountConfig, fallback: AccountConfig, *, reason: str) -> int:
    """The campaign's messages go through `fallback` from now on: its queued ones back to pending (the stopped
    account's tasks then find nothing to claim), its pending ones re-rendered and re-checked against the
    fallback's limits, those it cannot carry skipped with the reason; an audit entry (actor system) and a
    `campaign.failover` event (outbound webhooks) say so. Returns 1 when it moved (0: it changed meanwhile)."""
    moved = connection.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == CampaignStatus.RUNNING,
               current_account() == stopped.name)
        .values(failover_account=None if fallback.name == campaign.account_name else fallback.name)
        .execution_options(synchronize_session=False)).rowcount
    if not moved:
        return 0
    queued = connection.execute(select(Message.id).where(Message.campaign_id == campaign.id,
                                                         Message.state == M.QUEUED)).scalars().all()
    if queued:
        transition(connection, list(queued), expected=M.QUEUED, to=M.PENDING)
    # a backoff waited out the stopped account's trouble: the fallback may take them now
    connection.execute(update(Message).where(Message.campaign_id == campaign.id, Message.state == M.PENDING,
                                             Message.next_attempt_at.is_not(None))
                       .values(next_attempt_at=None).execution_options(synchronize_session=False))
    skipped = recheck(connection, campaign, fallback)
    with audit.acting_as(audit.SYSTEM):
        audit.record(connection, "campaign.failover", "campaign", campaign.id,
                     {"from": stopped.name, "to": fallback.name, "reason": str(reason),
                      "skipped": sum(skipped.values()), **({"skip_reasons": skipped} if skipped else {})})
    outbox.write(connection, subscriptions.CAMPAIGN_FAILOVER, [
        {"campaign_id": campaign.id, "name": campaign.name, "from": stopped.name, "to": fallback.name,
         "reason": str(reason)}])
    log.warning("campaign %s fails over from %s (%s) to %s; %d message(s) the fallback cannot carry skipped",
                campaign.id, stopped.name, reason, fallback.name, sum(skipped.values()))
    return 1


def recheck(connection, campaign, fallback: AccountConfig) -> dict[str, int]:
    """The campaign's pending messages rendered again from its template and each recipient's variables, and
    checked against `fallback`'s gateway limits for the campaign's kind: a text it cannot carry is `skipped`
    with the reason, any other keeps its (re-rendered) body. Returns a count per skip reason."""
    kind = campaign_kind(campaign.options, campaign.media_url)
    compiled = templates.compile_template(campaign.template)
    reasons: dict[str, int] = {}
    last = 0
    while True:
        rows = connection.execute(
            select(Message.id, Message.variables, Message.body)
            .where(Message.campaign_id == campaign.id, Message.state == M.PENDING, Message.id > last)
            .order_by(Message.id).limit(CHUNK)).all()
        if not rows:
            return reasons
        last = rows[-1].id
        skips, bodies = [], []
        for row in rows:
            text, reason = templates.render_one(compiled, json.loads(row.variables or "{}"))
            reason = reason or gateway_limits.too_long(text, fallback.provider, kind)
            if reason:
                skips.append({"id": row.id, "skip_reason": reason[:templates.MAX_REASON]})
                reasons[reason] = reasons.get(reason, 0) + 1
            elif text != row.body:
                bodies.append({"message_id": row.id, "new_body": text})
        transition_each(connection, skips, expected=M.PENDING, to=M.SKIPPED)
        if bodies:
            connection.execute(update(Message.__table__)
                               .where(Message.__table__.c.id == bindparam("message_id"),
                                      Message.__table__.c.state == M.PENDING.value)
                               .values(body=bindparam("new_body")), bodies)


# ------------------------------------------------------------------ an account's stops and streaks


def _ensure_account_row(connection, account_name: str) -> None:
    """An account's row (campaigns.models.Account) exists before its stop or streak is written (a fallback may
    have no campaign of its own). Two workers may add it at once: the second adds nothing."""
    if connection.execute(select(Account.name).where(Account.name == account_name)).first() is not None:
        return
    account = load_accounts().get(account_name)
    now = utcnow()
    values = {"name": account_name, "provider": account.provider if account else "?",
              "rate": account.rate if account else 0.0, "created_at": now, "updated_at": now}
    adding = (postgresql.insert if is_postgres(connection.engine) else sqlite.insert)(Account).values(**values)
    connection.execute(adding.on_conflict_do_nothing(index_elements=["name"]))


def mark_stopped(connection, account_name: str, reason: str) -> None:
    _ensure_account_row(connection, account_name)
    connection.execute(update(Account).where(Account.name == account_name)
                       .values(stopped_at=utcnow(), stop_reason=str(reason)[:16]))


def is_a_fallback(account_name: str) -> bool:
    """Whether another account names this one its fallback (only then does its stop matter)."""
    return any(account.fallback == account_name for account in load_accounts().values())


def clear_stop(connection, account_name: str, *, answered_at) -> None:
    """An answer the account accepted at `answered_at`: it carries messages again (a stop marked later stays)."""
    connection.execute(update(Account).where(Account.name == account_name, Account.stopped_at.is_not(None),
                                             Account.stopped_at < answered_at)
                       .values(stopped_at=None, stop_reason=None))


def forget_stops(connection, campaign_id: int) -> int:
    """The stops of every account on a campaign's chain are forgotten (its resume: the operator says they may carry
    messages again). Returns how many were."""
    own = connection.execute(select(Campaign.account_name).where(Campaign.id == campaign_id)).scalar()
    if own is None:
        return 0
    return connection.execute(update(Account).where(Account.name.in_(chain(own, load_accounts())),
                                                    Account.stopped_at.is_not(None))
                              .values(stopped_at=None, stop_reason=None)).rowcount


def count_transients(connection, account: AccountConfig, outcomes: list[str]) -> bool:
    """Keep the account's run of transient answers (`outcomes`: one task's, in the order given; a throttling
    answer neither adds nor breaks it); True when the run has reached `failover_after_transient` (an outage)."""
    from campaigns.states import Outcome

    counted = [outcome for outcome in outcomes if outcome != Outcome.THROTTLED]
    if not counted:
        return False
    trailing = 0
    for outcome in reversed(counted):
        if outcome != Outcome.TRANSIENT:
            break
        trailing += 1
    if trailing < len(counted):  # another answer broke the run: it is what came after
        connection.execute(update(Account).where(Account.name == account.name,
                                                 Account.transient_streak != trailing)
                           .values(transient_streak=trailing))
        return trailing >= account.failover_after_transient
    _ensure_account_row(connection, account.name)
    streak = connection.execute(update(Account).where(Account.name == account.name)
                                .values(transient_streak=Account.transient_streak + trailing)
                                .returning(Account.transient_streak)).scalar_one()
    return streak >= account.failover_after_transient


def kick(account_names) -> None:
    """A pacing round now for the accounts campaigns failed over to (beat's next round would anyway)."""
    from campaigns import dispatch

    for name in sorted(set(account_names)):
        try:
            dispatch.kick_pacer(name)
        except Exception as error:  # the broker may be down: beat paces it
            log.warning("could not ask for a pacing round of %s now (%s)", name, type(error).__name__)


# ------------------------------------------------------------------ the split per account


def split(connection, campaign_id: int) -> dict[str, dict[str, int]]:
    """Messages per account and state: each by the account it was handed to; those waiting to be sent (pending,
    queued) or never handed to one by the account the campaign sends through now."""
    waiting = Message.state.in_([M.PENDING.value, M.QUEUED.value])
    account = case((waiting, current_account()), else_=func.coalesce(Message.account_name, current_account()))
    rows = connection.execute(
        select(account, Message.state, func.count()).join(Campaign, Campaign.id == Message.campaign_id)
        .where(Message.campaign_id == campaign_id).group_by(account, Message.state)).all()
    counts: dict[str, dict[str, int]] = {}
    for name, state, n in rows:
        counts.setdefault(name, {})[state] = n
    return counts
