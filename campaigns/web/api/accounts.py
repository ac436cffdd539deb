"""/api/v1/accounts: the gateway accounts of blast.toml, never a credential."""

from __future__ import annotations

from fastapi import APIRouter

from campaigns.settings import load_accounts
from campaigns.web.api import schemas
from campaigns.web.api.auth import Viewer
from campaigns.web.api.problems import answers

router = APIRouter(prefix="/accounts", tags=["accounts"])


@router.get("", response_model=list[schemas.Account], responses=answers(401, 403))
def list_accounts(key: Viewer):
    """Each account's name, gateway and rate, and its balance where the gateway tells it."""
    from campaigns.web import balances

    accounts = load_accounts()
    known = balances.balances(accounts)
    return [{"name": name, "provider": account.provider, "rate": account.rate,
             "balance": known[name].text if known.get(name) is not None else None}
            for name, account in sorted(accounts.items())]
