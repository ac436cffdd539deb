"""The one seam through which `campaigns/` asks the workers for something: a pacing round now, and what a
gateway's module declares (its spec, its client class for the parts that need no account's connection).

The domain modules of `campaigns/` never import `workers` (an import contract in pyproject.toml, checked by
`make test`); they call these functions, which import the workers' side only when called.
"""

from __future__ import annotations


def kick_pacer(account_name: str | None = None) -> None:
    """Pace the account now (launch, resume, retry) instead of waiting for beat's next tick.

    The round runs right here, so the first send tasks reach the broker without a pace task's detour
    through it (launch to first message in well under a second)."""
    from workers.rate_limits import get_limiter
    from workers.tasks import pace_now

    pace_now(account_name, limiter=get_limiter())


def start_ingest(job_id: int) -> None:
    """Hand an ingest job (campaigns.ingest.jobs) to a worker: task `blast.ingest` on the `ingest` queue."""
    from workers.tasks import publish_ingest

    publish_ingest(job_id)


def kick_webhooks(subscription_ids) -> None:
    """Have these subscriptions' due webhook events delivered now: task `blast.deliver_webhooks` on the
    `webhooks` queue, one per subscription (its id only: the worker reads the rest)."""
    from workers.webhooks import publish_delivery

    for subscription_id in subscription_ids:
        publish_delivery(subscription_id)


def deliver_webhooks_now(subscription_id: int, delivery_ids: list[int]) -> list:
    """POST these deliveries of one subscription from this process, now (`blast webhooks test`); returns the
    answers (campaigns.webhooks.deliveries.Answer)."""
    from workers.webhooks import deliver

    return deliver(subscription_id, only=delivery_ids)["answers"]


def gateway_providers() -> tuple[str, ...]:
    """The name of every gateway Blast has a module for."""
    from workers.providers.registry import providers

    return providers()


def gateway_spec(provider: str):
    """The gateway's `GatewaySpec` (credentials, kinds, text limits, ...); ValueError for an unknown name."""
    from workers.providers.registry import spec_of

    return spec_of(provider)


def gateway_reason(provider: str, code: str) -> str | None:
    """What the gateway's document says a failure code means, if it says."""
    from workers.providers.registry import client_class

    return client_class(provider).reason_of(code)


def gateway_templates(account) -> list[dict]:
    """The account's templates as its gateway lists them now (`ProviderClient.list_templates`); BlastError,
    worded for the operator, when the gateway refuses or cannot be reached."""
    from campaigns.errors import BlastError
    from workers.providers.base import GatewayError
    from workers.providers.registry import client_class

    client = client_class(account.provider)(account)
    try:
        return client.list_templates()
    except GatewayError as error:
        raise BlastError(f"account {account.name!r}: the gateway did not list its templates "
                         f"({error.outcome.value}: {error})") from None
    finally:
        client.close()


def effective_rate(account_name: str, rate: float) -> float:
    """The rate (messages/s) the account is held to now by the shared limiter: `rate` after throttling."""
    from workers.rate_limits import get_limiter

    return get_limiter().effective_rate(account_name, rate=rate)


def rate_factors(throttled_at: list[float], moments: list[float]) -> list[float]:
    """The fraction of its configured rate the shared limiter held an account to at each of `moments` (epoch
    seconds, ascending), its throttling answers (`throttled_at`, ascending) replayed through the limiter's own
    adaptive rules."""
    from workers.rate_limits import get_limiter
    from workers.rate_limits.adaptive import after_throttle, recovered

    policy = get_limiter().policy
    f0 = t0 = halved = None
    factors, applied = [], 0
    for moment in moments:
        while applied < len(throttled_at) and throttled_at[applied] <= moment:
            f0, t0, halved = after_throttle(f0, t0, halved, throttled_at[applied], policy)
            applied += 1
        factors.append(recovered(f0, t0, moment, policy))
    return factors
