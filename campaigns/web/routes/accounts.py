"""The accounts page: rates, health, balances; never a secret."""

from __future__ import annotations

from fastapi import APIRouter, Request

from campaigns.settings import ConfigError, load_accounts
from campaigns.web import balances, insights
from campaigns.web.rendering import User, page

router = APIRouter()


@router.get("/accounts")
def accounts_page(request: Request, user: User):
    """Rates, recent error and throttling rates, paused campaigns: public facts only, never a secret."""
    try:
        accounts = load_accounts()
    except ConfigError as error:
        return page(request, "error.html", status_code=500, message=str(error))
    return page(request, "accounts.html", accounts=insights.account_health(accounts),
                minutes=insights.HEALTH_MINUTES, balances=balances.balances(accounts))
