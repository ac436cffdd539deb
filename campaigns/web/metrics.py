"""Prometheus metrics, counted at each scrape from the database and the limiter's Redis: every web process
answers the same, whichever one is asked, and nothing is kept in any process's memory.

The series (../shared/DESIGN.md): `blast_messages{account,state}` over every campaign of the account;
`blast_campaign_messages{campaign,state}` and `blast_campaign_eta_seconds{campaign}` for running and paused
campaigns only (the `campaign` label is its id), so the series stay few; `blast_send_outcomes_total{account,
outcome}` (every gateway call, from the attempts); `blast_rate_limit{account}` (configured) and
`blast_rate_effective{account}` (after throttling); `blast_queue_oldest_seconds{account}` (how long the oldest
queued message has waited for a worker); `blast_campaigns{account,status}`; `blast_beat_up` (with Redis: 1 while
a beat holds its lease); and `blast_status_event_age_seconds{account,source}`, how long ago the last delivery
report (`poll`) or webhook (`webhook`) arrived: the lag of the reports.
"""

from __future__ import annotations

import ipaddress
import math
from collections import defaultdict
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from campaigns import failover
from campaigns.db import session_scope
from campaigns.models import Attempt, Campaign, Message, StatusEvent, utcnow
from campaigns.settings import ConfigError, get_settings, load_accounts
from campaigns.states import CampaignStatus, MessageState
from campaigns.tallies import ALL_STATES
from campaigns.web import insights

# the account each message went through (campaigns.failover)
SENT_THROUGH = failover.message_account()

# Every series /metrics may expose (a counter's samples are named with _total).
SERIES = ("blast_messages", "blast_campaign_messages", "blast_campaign_eta_seconds", "blast_send_outcomes_total",
          "blast_rate_limit", "blast_rate_effective", "blast_queue_oldest_seconds", "blast_campaigns",
          "blast_beat_up", "blast_status_event_age_seconds")
WATCHED = (CampaignStatus.RUNNING.value, CampaignStatus.PAUSED.value)
CAMPAIGN_STATUSES = [status.value for status in CampaignStatus]


def allowed(host: str | None) -> bool:
    """Whether a request from `host` may read the metrics (BLAST_METRICS_ALLOW)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return any(address in network for network in allowed_networks(get_settings().metrics_allow))


def allowed_networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """BLAST_METRICS_ALLOW's addresses and networks; ConfigError naming an entry that is neither."""
    networks = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"BLAST_METRICS_ALLOW: {entry!r} is not an address or a network") from None
    return networks


def exposition() -> bytes:
    """The metrics in Prometheus' text format, counted now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry)


class _Collector:
    def collect(self):
        now = utcnow()
        try:
            accounts = load_accounts()
        except ConfigError:
            accounts = {}
        with session_scope() as session:
            by_account = session.execute(
                select(SENT_THROUGH, Message.state, func.count())
                .join(Campaign, Campaign.id == Message.campaign_id)
                .group_by(SENT_THROUGH, Message.state)).all()
            watched = session.execute(
                select(Campaign.id, failover.current_account().label("account_name"), Campaign.status)
                .where(Campaign.status.in_(WATCHED))).all()
            by_campaign = session.execute(
                select(Message.campaign_id, Message.state, func.count())
                .where(Message.campaign_id.in_([row.id for row in watched]))
                .group_by(Message.campaign_id, Message.state)).all() if watched else []
            outcomes = session.execute(
                select(SENT_THROUGH, Attempt.outcome, func.count())
                .join(Message, Message.id == Attempt.message_id).join(Campaign, Campaign.id == Message.campaign_id)
                .group_by(SENT_THROUGH, Attempt.outcome)).all()
            oldest = dict(session.execute(
                select(failover.current_account(), func.min(Message.updated_at))
                .join(Campaign, Campaign.id == Message.campaign_id)
                .where(Message.state == MessageState.QUEUED.value)
                .group_by(failover.current_account())).all())
            statuses = session.execute(
                select(Campaign.account_name, Campaign.status, func.count())
                .group_by(Campaign.account_name, Campaign.status)).all()
            events = session.execute(
                select(StatusEvent.account_name, StatusEvent.source, func.max(StatusEvent.received_at))
                .group_by(StatusEvent.account_name, StatusEvent.source)).all()

        names = sorted(set(accounts) | {row[0] for row in by_account})
        messages = GaugeMetricFamily("blast_messages", "Messages of every campaign of the account, by state",
                                     labels=["account", "state"])
        counts: dict[str, dict[str, int]] = {name: dict.fromkeys(ALL_STATES, 0) for name in names}
        for account, state, n in by_account:
            counts[account][state] = n
        for account in names:
            for state in ALL_STATES:
                messages.add_metric([account, state], counts[account][state])
        yield messages

        configured = GaugeMetricFamily("blast_rate_limit", "The account's configured rate (messages/s)",
                                       labels=["account"])
        effective = GaugeMetricFamily("blast_rate_effective",
                                      "The rate the account is held to now, after throttling (messages/s)",
                                      labels=["account"])
        rates: dict[str, float | None] = {}
        for name, account in sorted(accounts.items()):
            rates[name] = insights.effective_rate(account)
            configured.add_metric([name], account.rate)
            if rates[name] is not None:  # the limiter's Redis answered
                effective.add_metric([name], rates[name])
        yield configured
        yield effective

        campaign_counts: dict[int, dict[str, int]] = {row.id: dict.fromkeys(ALL_STATES, 0) for row in watched}
        for campaign_id, state, n in by_campaign:
            campaign_counts[campaign_id][state] = n
        per_campaign = GaugeMetricFamily("blast_campaign_messages",
                                         "Messages of a running or paused campaign, by state",
                                         labels=["campaign", "state"])
        for campaign_id, states in sorted(campaign_counts.items()):
            for state in ALL_STATES:
                per_campaign.add_metric([str(campaign_id), state], states[state])
        yield per_campaign
        yield _eta(watched, campaign_counts, rates)

        sends = CounterMetricFamily("blast_send_outcomes", "Gateway calls by what their answer meant",
                                    labels=["account", "outcome"])
        for account, outcome, n in sorted(outcomes):
            sends.add_metric([account, outcome], n)
        yield sends

        queue = GaugeMetricFamily("blast_queue_oldest_seconds",
                                  "How long the account's oldest queued message has waited for a worker",
                                  labels=["account"])
        for name in names:
            queue.add_metric([name], _age(now, oldest.get(name)) if oldest.get(name) else 0.0)
        yield queue

        campaigns = GaugeMetricFamily("blast_campaigns", "The account's campaigns by status",
                                      labels=["account", "status"])
        by_status: dict[str, dict[str, int]] = {name: dict.fromkeys(CAMPAIGN_STATUSES, 0) for name in names}
        for account, status, n in statuses:
            by_status.setdefault(account, dict.fromkeys(CAMPAIGN_STATUSES, 0))[status] = n
        for account in sorted(by_status):
            for status, n in by_status[account].items():
                campaigns.add_metric([account, status], n)
        yield campaigns

        beat = _beat_up()
        if beat is not None:
            up = GaugeMetricFamily("blast_beat_up", "1 while a `blast beat` holds the beat lease (pacing, polling)")
            up.add_metric([], 1.0 if beat else 0.0)
            yield up

        lag = GaugeMetricFamily("blast_status_event_age_seconds",
                                "Seconds since the account's last delivery report (poll) or webhook arrived",
                                labels=["account", "source"])
        for account, source, last in sorted(events):
            lag.add_metric([account, source], _age(now, last))
        yield lag


def _eta(watched, campaign_counts: dict[int, dict[str, int]], rates: dict[str, float]) -> GaugeMetricFamily:
    """`insights.eta_seconds` of each running campaign; +Inf for a paused one (or a rate not known)."""
    eta = GaugeMetricFamily("blast_campaign_eta_seconds",
                            "Seconds until the campaign has sent what it has left (+Inf while paused)",
                            labels=["campaign"])
    running = defaultdict(int)
    for row in watched:
        if row.status == CampaignStatus.RUNNING.value:
            running[row.account_name] += 1
    for row in sorted(watched, key=lambda row: row.id):
        left = sum(campaign_counts[row.id][state] for state in insights.LEFT_STATES)
        seconds = insights.eta_seconds(status=row.status, left=left, rate=rates.get(row.account_name),
                                       sharing=running[row.account_name])
        eta.add_metric([str(row.id)], math.inf if seconds is None else seconds)
    return eta


def _beat_up() -> bool | None:
    """Whether a `blast beat` holds this installation's beat lease now (its Redis key lives while it renews
    it); None without Redis (the embedded default's file lock cannot be looked at without taking it) or when
    Redis does not answer."""
    url = get_settings().redis_url
    if not url:
        return None
    import redis

    from schedules.beat import lease_name
    from schedules.locks import KEY_PREFIX

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return bool(client.exists(KEY_PREFIX + lease_name()))
    except redis.RedisError:
        return None
    finally:
        client.close()


def _age(now: datetime, then: datetime) -> float:
    return max(0.0, now.timestamp() - insights.epoch_seconds(then))
