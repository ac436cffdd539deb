"""Account balances for the accounts page, where the gateway's spec says it tells them. Asked with a short
timeout, all accounts at once, and kept for a few minutes per process,
so the page neither waits long nor asks the gateway on every view."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from cachetools import TLRUCache

from campaigns.settings import AccountConfig

TIMEOUT_SECONDS = 3.0  # the longest the page waits for one gateway's answer
FRESH_SECONDS = 300.0  # a balance is asked again after this long
RETRY_SECONDS = 60.0  # a failed ask is repeated after this long


@dataclass(frozen=True)
class Balance:
    words: dict[str, str] | None  # the gateway's fields, as text (None when it could not be read)
    problem: str | None  # why not, for the operator (never a credential)
    at: datetime  # when asked, UTC

    @property
    def text(self) -> str:
        if self.words is None:
            return f"unavailable ({self.problem})"
        return ", ".join(f"{key}: {value}" for key, value in self.words.items()) or "empty answer"


def _keep_until(_name: str, kept: tuple[AccountConfig, Balance], now: float) -> float:
    return now + (RETRY_SECONDS if kept[1].words is None else FRESH_SECONDS)


# Per account name: (the account as it was asked, its balance), until a fresh or a failed answer is old.
_cache: TLRUCache[str, tuple[AccountConfig, Balance]] = TLRUCache(maxsize=1024, ttu=_keep_until)
_lock = threading.Lock()  # cachetools' caches are not thread-safe


def tells_balance(account: AccountConfig) -> bool:
    from workers.providers.registry import spec_of

    return spec_of(account.provider).balance


def _masked(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "****")
    return text


def ask(account: AccountConfig, *, timeout: float = TIMEOUT_SECONDS) -> Balance:
    """The gateway's balance now (one request, `timeout` seconds at most to connect and to answer)."""
    from workers.providers.base import GatewayError
    from workers.providers.registry import client_class

    now = datetime.now(UTC)
    client = client_class(account.provider)(account.model_copy(update={"timeout_seconds": timeout}))
    try:
        body = client.balance()
    except GatewayError as error:
        return Balance(None, _masked(str(error), account.secret_values()), now)
    except Exception as error:  # an answer shaped unlike the document: the page shows the rest
        return Balance(None, f"unreadable answer ({type(error).__name__})", now)
    finally:
        client.close()
    if body is None:
        return Balance(None, "the gateway offers no balance for this account", now)
    secrets = account.secret_values()
    words = {_masked(str(key), secrets): _masked(str(value), secrets) for key, value in body.items()
             if not isinstance(value, dict | list)}
    return Balance(words, None, now)


def balances(accounts: Mapping[str, AccountConfig]) -> dict[str, Balance | None]:
    """Per account: its last known balance (asked now when older than FRESH_SECONDS), or None when its
    gateway tells none. Accounts due are asked in parallel."""
    found: dict[str, Balance | None] = {}
    due: list[AccountConfig] = []
    with _lock:
        for name, account in accounts.items():
            if not tells_balance(account):
                found[name] = None
                continue
            cached = _cache.get(name)
            if cached is not None and cached[0] == account:
                found[name] = cached[1]
            else:
                due.append(account)
    if due:
        with ThreadPoolExecutor(max_workers=min(8, len(due))) as pool:
            for account, balance in zip(due, pool.map(ask, due), strict=True):
                found[account.name] = balance
                with _lock:
                    _cache[account.name] = (account, balance)
    return found


def forget() -> None:
    """Drop every kept balance (tests, or after blast.toml changes)."""
    with _lock:
        _cache.clear()


def ask_daily_cap(account: AccountConfig, *, timeout: float = TIMEOUT_SECONDS):
    """The gateway's daily cap on the account (campaigns.forecast.DailyCap), or None when it tells none or
    cannot be asked now (the forecast then assumes no cap)."""
    from campaigns.forecast import DailyCap
    from workers.providers.base import NotOffered
    from workers.providers.registry import client_class

    client = client_class(account.provider)(account.model_copy(update={"timeout_seconds": timeout}))
    try:
        cap = client.daily_cap()
    except NotOffered:
        return None
    except Exception:  # unreachable or an answer unlike the document: no cap is known
        return None
    finally:
        client.close()
    if cap is None:
        return None
    per_day, used_today, zone = cap
    return DailyCap(per_day=per_day, used_today=used_today, zone=zone)


def gateway_facts(account: AccountConfig) -> tuple[dict[str, str] | None, object]:
    """What the forecast asks of the gateway, both at once: its balance answer (None when it tells none
    or could not be read) and its daily cap (None when none is known)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        balance = pool.submit(ask, account) if tells_balance(account) else None
        cap = pool.submit(ask_daily_cap, account)
        return (balance.result().words if balance is not None else None), cap.result()
