"""Webhook addresses: BLAST_PUBLIC_URL + /hooks/<provider>/<account>, authenticated by the account's
webhook_secret. Gateways that take a URL per message (Devino's callbackUrl) get the secret in the
query string, since they cannot send a header of ours."""

from __future__ import annotations

from urllib.parse import quote

from campaigns.settings import AccountConfig, get_settings

SECRET_PARAMETER = "token"


def hook_path(account: AccountConfig) -> str:
    return f"/hooks/{account.provider}/{quote(account.name, safe='')}"


def hook_url(account: AccountConfig, *, with_secret: bool = True) -> str:
    url = get_settings().public_url.rstrip("/") + hook_path(account)
    if with_secret and account.webhook_secret is not None:
        url += f"?{SECRET_PARAMETER}={quote(account.webhook_secret.get_secret_value(), safe='')}"
    return url
