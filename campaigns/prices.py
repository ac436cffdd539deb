"""What a message costs on each gateway and what the account's balance is, in one unit, for the forecast
before a launch (campaigns.forecast).

The gateways' documents tell little about prices, so everything assumed is in one table, `PRICING`:
- Socnet tells the charge only after a send: its answer's `cost`, "Charge applied to SUCCESSFUL request"
  (socnet.txt). The price of the next message is the highest charge its recent sends reported (kept in
  `message.cost`): channel 2 answers `"cost": 0`, channel 1 its real charge, and a forecast should not
  count the free ones. Socnet tells no balance and no currency.
- The WhatsApp HTTP API counts in quota: its check-balance answer's `quota` is the credit left, and every
  message uses one (the "05-Quota expiry" answer means "Credit Balance not available or finished").
- SMSGlobal's `/v2/user/credit-balance` answers `{"balance", "currency"}`; its WhatsApp price is not public,
  so one message is taken to cost one unit of that balance (the sandbox's assumption too).
- Devino and Meta's Cloud API tell neither a price nor a balance through the API Blast uses.

An account's `price_per_message` (and `currency`) in blast.toml overrides the table, for the gateways that
tell no price or to use a contract's real one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from campaigns.settings import AccountConfig

QUOTA = "quota"  # the HTTP API's own unit: one quota per message


@dataclass(frozen=True)
class Pricing:
    """What one gateway tells about money. Amounts are per message, in `unit`."""

    per_message: float | None = None  # None: the gateway's table has no price
    unit: str | None = None  # a currency code or the gateway's credit unit; None: not told
    charged_on_send: bool = False  # the price is the charge its send answers report (message.cost)
    balance_field: str | None = None  # the field of its balance answer that holds what is left
    currency_field: str | None = None  # the field of its balance answer that names the balance's currency


# Our assumptions, per gateway (see the module's docstring for where each comes from).
PRICING: dict[str, Pricing] = {
    "socnet": Pricing(charged_on_send=True),
    "httpapi": Pricing(per_message=1.0, unit=QUOTA, balance_field="quota"),
    "smsglobal": Pricing(per_message=1.0, balance_field="balance", currency_field="currency"),
}
NO_PRICING = Pricing()


@dataclass(frozen=True)
class Money:
    """An amount in `unit` (a currency code, "quota", or None when the gateway does not name it)."""

    amount: float
    unit: str | None


def pricing(provider: str) -> Pricing:
    return PRICING.get(provider, NO_PRICING)


def _number(text: object) -> float | None:
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None  # no NaN, no infinity


def balance_of(account: AccountConfig, answer: Mapping[str, object] | None) -> Money | None:
    """The account's balance from its gateway's balance answer (its fields, as text or numbers); None
    when the gateway tells none or the answer does not hold it."""
    table = pricing(account.provider)
    if answer is None or table.balance_field is None:
        return None
    amount = _number(answer.get(table.balance_field))
    if amount is None:
        return None
    unit = table.unit
    if table.currency_field is not None and answer.get(table.currency_field):
        unit = str(answer[table.currency_field]).strip() or unit
    return Money(amount, unit)


def price_of(account: AccountConfig, *, recent_charges: Iterable[object] = (),
             balance_unit: str | None = None) -> Money | None:
    """What one message will cost: the account's `price_per_message` when set, else the gateway's table
    (for Socnet the highest of `recent_charges`, its recent send answers' `cost`). The unit is the account's
    `currency`, else the table's, else the balance's (`balance_unit`). None when nothing tells a price."""
    table = pricing(account.provider)
    unit = account.currency or table.unit or (balance_unit if table.balance_field else None)
    if account.price_per_message is not None:
        return Money(account.price_per_message, account.currency or table.unit or balance_unit)
    if table.per_message is not None:
        return Money(table.per_message, unit)
    if table.charged_on_send:
        charges = [value for value in (_number(charge) for charge in recent_charges) if value is not None]
        if charges:
            return Money(max(charges), unit)
    return None


def covers(balance: Money | None, cost: Money | None) -> bool | None:
    """Whether the balance covers the cost; None when either is unknown or they are in different units."""
    if balance is None or cost is None:
        return None
    if balance.unit is not None and cost.unit is not None and balance.unit.lower() != cost.unit.lower():
        return None
    return balance.amount >= cost.amount


def text(amount: float | None, unit: str | None) -> str:
    """An amount as the operator reads it: "1,234.5 AUD", "90" (no unit told); "not told by the gateway"."""
    if amount is None:
        return "not told by the gateway"
    return f"{amount:,.2f}".rstrip("0").rstrip(".") + (f" {unit}" if unit else "")

