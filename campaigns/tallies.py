"""Campaign tallies, counted from the message rows themselves, so they always equal them."""

from __future__ import annotations

from sqlalchemy import func, select

from campaigns import failover
from campaigns.db import session_scope
from campaigns.errors import NotFound
from campaigns.models import Campaign, Message
from campaigns.states import MessageState

ALL_STATES = [state.value for state in MessageState]
SHOWN_STATES = ALL_STATES


def counts_by_campaign(session, campaign_ids: list[int] | None = None) -> dict[int, dict[str, int]]:
    query = select(Message.campaign_id, Message.state, func.count())
    query = query.group_by(Message.campaign_id, Message.state)
    if campaign_ids is not None:
        query = query.where(Message.campaign_id.in_(campaign_ids))
    counts: dict[int, dict[str, int]] = {}
    for campaign_id, state, n in session.execute(query):
        counts.setdefault(campaign_id, dict.fromkeys(ALL_STATES, 0))[state] = n
    return counts


def _report(campaign: Campaign, counts: dict[str, int] | None) -> dict:
    counts = counts or dict.fromkeys(ALL_STATES, 0)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "total": sum(counts.values()),
        "counts": counts,
    }


def campaign_report(campaign_id: int) -> dict:
    """DESIGN.md's `blast status ID --json` shape: id, name, status, total, counts per state; and `failures`,
    and `accounts`: the counts per state of each account its messages went through (campaigns.failover.split)."""
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFound(f"no campaign with id {campaign_id}")
        report = _report(campaign, counts_by_campaign(session, [campaign_id]).get(campaign_id))
        if campaign.pause_reason and campaign.status == "paused":
            report["pause_reason"] = campaign.pause_reason
        report["failures"] = failures(session, campaign_id)
        report["accounts"] = failover.split(session, campaign_id)
        return report


def failures(session, campaign_id: int) -> list[dict]:
    """Failed messages grouped by reason and code, most frequent first: [{"reason", "code", "count"}]."""
    query = (
        select(Message.error_reason, Message.error_code, func.count())
        .where(Message.campaign_id == campaign_id, Message.state == MessageState.FAILED.value)
        .group_by(Message.error_reason, Message.error_code)
    )
    rows = [{"reason": reason, "code": code, "count": n} for reason, code, n in session.execute(query)]
    return sorted(rows, key=lambda row: (-row["count"], str(row["reason"]), str(row["code"])))


def all_campaigns() -> list[dict]:
    with session_scope() as session:
        campaigns = session.execute(select(Campaign).order_by(Campaign.id)).scalars().all()
        counts = counts_by_campaign(session)
        return [_report(campaign, counts.get(campaign.id)) for campaign in campaigns]


def print_report(console, report: dict) -> None:
    from rich.table import Table

    title = f"campaign {report['id']} · {report['name']} · {report['status']}"
    if report.get("pause_reason"):
        title += f" ({report['pause_reason']})"
    table = Table("state", "messages", title=title)
    for state in SHOWN_STATES:
        if report["counts"][state]:
            table.add_row(state, str(report["counts"][state]))
    table.add_row("[bold]total", f"[bold]{report['total']}")
    console.print(table)
    if len(report.get("accounts") or {}) > 1:  # it failed over: the split per account
        split = Table("account", *[state for state in SHOWN_STATES if any(
            counts.get(state) for counts in report["accounts"].values())], title="messages per account")
        for account, counts in sorted(report["accounts"].items()):
            split.add_row(account, *[str(counts.get(column.header, 0)) for column in split.columns[1:]])
        console.print(split)
    if report.get("failures"):
        reasons = Table("failure reason", "code", "messages")
        for failure in report["failures"]:
            reasons.add_row(failure["reason"] or "-", failure["code"] or "-", str(failure["count"]))
        console.print(reasons)
