"""Small builders for rows the tests need (no generated data is committed)."""

from __future__ import annotations

from sqlalchemy import insert
from sqlmodel import Session

from campaigns.models import Account, Campaign, Message, utcnow


def make_campaign(engine, *, account: str = "acct", provider: str = "socnet", status: str = "draft",
                  rate: float = 10.0, **fields) -> Campaign:
    with Session(engine, expire_on_commit=False) as session:
        if session.get(Account, account) is None:
            session.add(Account(name=account, provider=provider, rate=rate))
        campaign = Campaign(name=fields.pop("name", "test"), account_name=account, status=status,
                            template=fields.pop("template", "Hello {{ name }}"), **fields)
        session.add(campaign)
        session.commit()
        return campaign


def make_messages(engine, campaign_id: int, count: int, *, state: str = "pending", start: int = 0) -> list[int]:
    now = utcnow()
    rows = [
        {"campaign_id": campaign_id, "phone": f"+2567{start + i:08d}", "body": f"hello {i}",
         "state": str(state), "row_number": start + i + 1, "variables": "{}", "attempts": 0,
         "created_at": now, "updated_at": now}
        for i in range(count)
    ]
    with engine.begin() as connection:
        statement = insert(Message).returning(Message.id, sort_by_parameter_order=True)
        return list(connection.execute(statement, rows).scalars())
