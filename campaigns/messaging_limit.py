"""Meta's messaging limit (providers/metacloud.md sections 4 and 9, rule 5): the unique people a business may
message outside a customer-service window in a moving 24 hours (250 at first, then 2,000, 10,000, 100,000 or
unlimited, as Meta raises it). No error code announces the limit (messages to the people past it fail), so
a launch is checked against it beforehand: an account may set `messaging_limit` in blast.toml, and a launch
whose new recipients would take the account past it is refused, with the numbers, before anything is sent.

Who counts: each number the account handed a message to in the last 24 hours (once, however many messages),
and each recipient of the new campaign not among them, except numbers inside their customer-service window
now (campaigns.service_window: they wrote to the account, so a message to them is free of the limit).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from campaigns.errors import BlastError
from campaigns.models import Campaign, Message, ServiceWindow, utcnow
from campaigns.settings import AccountConfig
from campaigns.states import MessageState

HOURS = 24.0  # the limit's moving window
SERVICE_WINDOW_HOURS = 24.0  # a number that wrote within this long may be messaged outside the limit


def check(connection, campaign_id: int, account: AccountConfig) -> None:
    """Refuse (BlastError) a launch of the campaign's pending messages that would take `account` past its
    `messaging_limit`; nothing to check when it sets none."""
    if account.messaging_limit is None:
        return
    used, new = counts(connection, campaign_id, account)
    if used + new > account.messaging_limit:
        raise BlastError(
            f"account {account.name!r}: {new:,} new recipients outside a customer-service window, and {used:,} "
            f"already messaged in the last {HOURS:g} hours, are more than its messaging limit of "
            f"{account.messaging_limit:,} people a day (messaging_limit in blast.toml, as Meta shows it): nothing "
            "was sent; send to fewer people, or later")


def counts(connection, campaign_id: int, account: AccountConfig) -> tuple[int, int]:
    """(people the account messaged in the last 24 hours, the campaign's recipients not among them), both
    without the numbers inside their customer-service window now."""
    from campaigns.failover import sent_through

    now = utcnow()
    inside = select(ServiceWindow.phone).where(
        ServiceWindow.account_name == account.name,
        ServiceWindow.last_inbound_at >= now - timedelta(hours=SERVICE_WINDOW_HOURS))
    recent = (select(Message.phone).join(Campaign, Campaign.id == Message.campaign_id)
              .where(sent_through(account.name), Message.submitted_at >= now - timedelta(hours=HOURS)))
    counted = recent.where(Message.phone.not_in(inside)).subquery()
    used = connection.execute(select(func.count(func.distinct(counted.c.phone)))).scalar_one()
    new = connection.execute(select(func.count(func.distinct(Message.phone)))
                             .where(Message.campaign_id == campaign_id, Message.state == MessageState.PENDING.value,
                                    Message.phone.not_in(inside), Message.phone.not_in(recent))).scalar_one()
    return used, new
