"""The forecast before a launch (`blast launch --dry-run [--json]`): recipients by verdict, the time the send
takes under quiet hours and daily caps, the cost and the balance as the sandbox's gateways tell them, and
the confirmation a launch the balance cannot cover asks for. The ETA is checked against a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from campaigns import forecast
from campaigns.db import engine_for
from campaigns.models import Campaign, IngestJob, Message, OptOut
from campaigns.quiet_hours import parse_window
from tests.support import services
from tests.support.engine import ROOT, write_config, write_contacts
from tests.support.sandbox import HTTPAPI_TOKEN, SMSGLOBAL_KEY, SOCNET_KEY

KEYS = {"recipients", "valid", "skipped", "reasons", "eta_seconds", "rate", "cost", "currency", "balance",
        "balance_ok", "days"}


def blast(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The command line as a script runs it: no terminal (stdin is not one)."""
    return subprocess.run([sys.executable, "-m", "campaigns.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=120)


def rows(database_url: str) -> dict[str, int]:
    engine = engine_for(database_url)
    with engine.connect() as connection:
        return {table.__name__: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (Campaign, Message, IngestJob)}


# ---------------------------------------------------------------- the send's time, with a fixed clock

KAMPALA, TOKYO = "Africa/Kampala", "Asia/Tokyo"  # UTC+3 and UTC+9, no daylight saving time


def test_quiet_hours_hold_the_rest_of_the_send_until_the_window_ends():
    # given 7,200 recipients in Kampala at 1 message a second, starting at 19:30 their time
    start = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)
    # when the send is forecast without quiet hours, and with 21:00-08:00
    plain = forecast.send_span({KAMPALA: 7200}, start=start, rate=1.0)
    quiet = forecast.send_span({KAMPALA: 7200}, start=start, rate=1.0, window=parse_window("21:00-08:00"))
    # then without them it ends two hours later, the same day
    assert plain == (start, start + timedelta(hours=2))
    assert forecast.calendar_days(*plain, UTC) == 1
    # and with them 5,400 go before 21:00 and the other 1,800 from 08:00 the next morning: done at 08:30
    assert quiet == (start, datetime(2026, 3, 3, 5, 30, tzinfo=UTC))
    assert forecast.calendar_days(*quiet, UTC) == 2


def test_recipients_inside_their_window_at_the_start_wait_for_its_end():
    # given 1,800 recipients in Tokyo (13:00 there) and 1,800 in Kampala (07:00, quiet until 08:00)
    start = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
    # when the send is forecast at 1 message a second under 21:00-08:00
    span = forecast.send_span({TOKYO: 1800, KAMPALA: 1800}, start=start, rate=1.0, window=parse_window("21:00-08:00"))
    # then Tokyo goes at once, Kampala from 05:00 UTC: the last at 05:30, as a single server with those
    # release times sends them (max over k of t_k + (n - k + 1) / rate)
    assert span == (start, datetime(2026, 3, 2, 5, 30, tzinfo=UTC))


def test_a_daily_cap_spreads_the_send_over_the_gateways_days():
    # given a gateway that takes 1,000 messages a day and took 400 today, and 2,000 recipients at 10/s
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    cap = forecast.DailyCap(per_day=1000, used_today=400, zone=UTC)
    # when the send is forecast
    first, last = forecast.send_span({"UTC": 2000}, start=start, rate=10.0, cap=cap)
    # then 600 go today, 1,000 tomorrow and the last 400 the day after: three calendar days
    assert first == start
    assert last == datetime(2026, 3, 4, 0, 0, 40, tzinfo=UTC)
    assert forecast.calendar_days(first, last, UTC) == 3


def test_a_send_past_ten_years_is_no_forecast():
    # given a gateway that takes one message a day, and 10,000 recipients
    cap = forecast.DailyCap(per_day=1, zone=UTC)
    # when the send is forecast, then it is refused rather than followed for 27 years
    with pytest.raises(ValueError, match="would not end within ten years"):
        forecast.send_span({"UTC": 10_000}, start=datetime(2026, 3, 2, tzinfo=UTC), rate=10.0, cap=cap)


def test_the_rate_the_limiter_achieves_keeps_its_safety_margin():
    # a margin of 0.05 s a second costs 0.05 / 1.05 of the rate; a rate counts whole messages a second
    assert forecast.achieved_rate(200, 0.05) == pytest.approx(200 / 1.05)
    assert forecast.achieved_rate(20.5, 0.05) == pytest.approx(20 / 1.05)
    assert forecast.achieved_rate(0.5, 0.05) == pytest.approx(1 / 2.05)


# ---------------------------------------------------------------- the command line, against the sandbox


@pytest.fixture
def cli_env(database_url, tmp_path, sandbox):
    """The command line's environment: the test database, a blast.toml of sandbox accounts, no broker."""
    write_config(tmp_path / "blast.toml", sandbox, {
        "india": {"provider": "httpapi", "rate": 50},
        "sydney": {"provider": "smsglobal", "rate": 20},
        "priced": {"provider": "devino", "rate": 10, "price_per_message": 0.25, "currency": "EUR"},
    })
    return {**os.environ, "BLAST_DATABASE_URL": database_url, "BLAST_CONFIG": str(tmp_path / "blast.toml"),
            "BLAST_BROKER_URL": "memory://", "BLAST_HOME": str(tmp_path / "blast-home")}


def known_file(path, database_url) -> None:
    """15 rows: 11 valid; one invalid number, one duplicate, one opted out, one whose template cannot render."""
    write_contacts(path, 12)
    with path.open("a", encoding="utf-8") as stream:
        stream.write("Bad,12\n")  # too short
        stream.write("Again,+256770000003\n")  # duplicate of row 5
        stream.write(",+256771111111\n")  # no name: the template's variable is missing
    with engine_for(database_url).begin() as connection:
        connection.execute(OptOut.__table__.insert().values(phone="+256770000011"))


def test_dry_run_json_counts_every_verdict_and_creates_nothing(cli_env, database_url, tmp_path, sandbox):
    # given a known file, and an HTTP API account with 8 quota left at the gateway
    known_file(tmp_path / "c.csv", database_url)
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, quota=8)
    before = rows(database_url)
    # when the launch is forecast
    result = blast("launch", str(tmp_path / "c.csv"), "--account", "india", "--template", "Hi {{ name }}",
                   "--dry-run", "--json", env=cli_env)
    # then the JSON has the contract's keys and the file's figures
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == KEYS
    assert (figures["recipients"], figures["valid"], figures["skipped"]) == (15, 11, 4)
    assert figures["reasons"] == {"duplicate": 1, "opted out": 1, "too short": 1, "missing variable: name": 1}
    # and one quota a message against the sandbox's 8: not covered
    assert (figures["cost"], figures["currency"], figures["balance"], figures["balance_ok"]) == (11, "quota", 8, False)
    assert figures["rate"] == 50 and figures["days"] == 1
    # 11 messages at 50/s: well under a few seconds with the file's read and the start
    assert 0.2 < figures["eta_seconds"] < 5
    # and nothing was created, nothing sent
    assert rows(database_url) == before == {"Campaign": 0, "Message": 0, "IngestJob": 0}
    assert sandbox.account_stats("httpapi", HTTPAPI_TOKEN)["accepted"] == 0


SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the command, not the database


@SQLITE_ONLY
def test_cost_and_balance_as_each_gateway_tells_them(cli_env, tmp_path, sandbox):
    # given 40 recipients; SMSGlobal with 100 credits left, and a Devino account priced in blast.toml
    write_contacts(tmp_path / "c.csv", 40)
    sandbox.knobs("smsglobal", SMSGLOBAL_KEY, quota=100)

    def figures(account: str) -> dict:
        result = blast("launch", str(tmp_path / "c.csv"), "--account", account, "--template", "Hi {{ name }}",
                       "--dry-run", "--json", env=cli_env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    # when each launch is forecast
    sydney, priced = figures("sydney"), figures("priced")
    # then SMSGlobal's balance is its credit in its currency, one credit a message: covered
    assert (sydney["cost"], sydney["currency"], sydney["balance"], sydney["balance_ok"]) == (40, "AUD", 100, True)
    # and Devino tells no balance: the configured price gives the cost, nothing says whether it is covered
    assert (priced["cost"], priced["currency"], priced["balance"], priced["balance_ok"]) == (10, "EUR", None, None)


@SQLITE_ONLY
def test_a_launch_the_balance_cannot_cover_is_refused_without_yes(cli_env, database_url, tmp_path, sandbox):
    # given 5 recipients and an HTTP API account with 2 quota left
    write_contacts(tmp_path / "c.csv", 5)
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, quota=2)
    launch = ("launch", str(tmp_path / "c.csv"), "--account", "india", "--template", "Hi {{ name }}",
              "--at", "2999-01-01T09:00+00:00")
    # when it is launched without a terminal and without --yes
    refused = blast(*launch, env=cli_env)
    # then it is refused with the figures, and nothing is created
    assert refused.returncode == 1
    assert "cost (5 quota for 5 messages) is more than the balance (2 quota)" in refused.stderr
    assert "--yes" in refused.stderr and "Traceback" not in refused.stderr
    assert rows(database_url) == {"Campaign": 0, "Message": 0, "IngestJob": 0}
    # when it is launched with --yes
    launched = blast(*launch, "--yes", env=cli_env)
    # then the campaign is created as any launch creates it
    assert launched.returncode == 0, launched.stderr
    assert rows(database_url) == {"Campaign": 1, "Message": 5, "IngestJob": 1}
    status = json.loads(blast("status", launched.stdout.strip(), "--json", env=cli_env).stdout)
    assert (status["status"], status["progress"], status["eta_seconds"]) == ("scheduled", 0.0, None)
    # and once the balance covers it, a launch asks nothing
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, quota=5)
    again = blast(*launch, env=cli_env)
    assert again.returncode == 0, again.stderr
    assert rows(database_url)["Campaign"] == 2


def blast_on_a_terminal(*args: str, env: dict[str, str], answer: str) -> subprocess.CompletedProcess:
    """The command line with a terminal for its input, `answer` typed into it ahead."""
    import pty

    terminal, command_side = pty.openpty()
    try:
        os.write(terminal, answer.encode() + b"\n")
        return subprocess.run([sys.executable, "-m", "campaigns.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, env=env, stdin=command_side, timeout=120)
    finally:
        os.close(command_side)
        os.close(terminal)


@SQLITE_ONLY
def test_on_a_terminal_a_launch_the_balance_cannot_cover_asks(cli_env, database_url, tmp_path, sandbox):
    # given 5 recipients and an HTTP API account with 2 quota left
    write_contacts(tmp_path / "c.csv", 5)
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, quota=2)
    launch = ("launch", str(tmp_path / "c.csv"), "--account", "india", "--template", "Hi {{ name }}",
              "--at", "2999-01-01T09:00+00:00")
    # when it is launched on a terminal and the operator answers no
    declined = blast_on_a_terminal(*launch, env=cli_env, answer="n")
    # then it asked, with the figures, and created nothing
    assert "is more than the balance (2 quota). Launch anyway?" in declined.stderr
    assert declined.returncode == 1 and rows(database_url)["Campaign"] == 0
    # when the operator answers yes
    accepted = blast_on_a_terminal(*launch, env=cli_env, answer="y")
    # then the campaign is created
    assert accepted.returncode == 0, accepted.stderr
    assert rows(database_url)["Campaign"] == 1


def test_a_dry_run_without_a_database_creates_none(tmp_path, blast_home, sandbox):
    # given no database yet (the embedded default, nothing under BLAST_HOME)
    write_config(tmp_path / "blast.toml", sandbox, {"india": {"provider": "httpapi", "rate": 50}})
    write_contacts(tmp_path / "c.csv", 3)
    env = {**os.environ, "BLAST_HOME": str(blast_home), "BLAST_CONFIG": str(tmp_path / "blast.toml")}
    for name in ("BLAST_DATABASE_URL", "BLAST_BROKER_URL", "BLAST_REDIS_URL"):
        env.pop(name, None)
    # when a launch is forecast, as a summary for the operator
    result = blast("launch", str(tmp_path / "c.csv"), "--account", "india", "--template", "Hi", "--dry-run",
                   env=env)
    # then it prints the figures and leaves no database, no folder, no file behind
    assert result.returncode == 0, result.stderr
    assert "to send" in result.stdout and "1,000,000 quota" in result.stdout
    assert not blast_home.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["blast.toml", "c.csv"]


def test_the_gateways_daily_cap_spreads_the_send_over_days(cli_env, tmp_path, sandbox):
    # given an HTTP API instance that takes 3 messages a day, on an account whose days are India's
    write_config(tmp_path / "blast.toml", sandbox, {"india": {"provider": "httpapi", "rate": 50,
                                                              "timezone": "+05:30"}})
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, daily_limit=3)
    write_contacts(tmp_path / "c.csv", 5)
    # when a launch of 5 is forecast
    asked = datetime.now(UTC)
    result = blast("launch", str(tmp_path / "c.csv"), "--account", "india", "--template", "Hi {{ name }}",
                   "--dry-run", "--json", env=cli_env)
    answered = datetime.now(UTC)
    # then 3 go today and 2 just after India's next midnight: two calendar days, the last message then
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    india = asked.astimezone(forecast_zone("+05:30"))
    midnight = datetime.combine(india.date() + timedelta(days=1), datetime.min.time(), tzinfo=india.tzinfo)
    assert figures["days"] == 2
    eta = timedelta(seconds=figures["eta_seconds"])  # counted from a moment between asked and answered
    assert answered + eta > midnight and asked + eta < midnight + timedelta(seconds=1)


def forecast_zone(offset: str):
    from campaigns.settings import zone_of

    return zone_of(offset)


def test_a_socnet_message_costs_the_charge_its_sends_reported(tmp_path, blast_home, sandbox):
    """Socnet tells a price only in its send answers: after a campaign on the embedded default, the forecast
    prices the next one at the highest charge the sandbox reported (its channel 2 reports 0)."""
    from campaigns import lifecycle
    from campaigns.cli.campaigns import forecast_launch
    from campaigns.db import migrate
    from campaigns.settings import reset_settings
    from tests.support.engine import wait_for_status
    from workers.embedded import EmbeddedWorker

    # given a first campaign of 20 sent through Socnet at a charge of 120 a message
    write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 100}})
    reset_settings()
    migrate()
    sandbox.knobs("socnet", SOCNET_KEY, charge=120)
    write_contacts(tmp_path / "first.csv", 20)
    with EmbeddedWorker(concurrency=4):
        first, _ = lifecycle.launch(tmp_path / "first.csv", account_name="uganda", template="Hi {{ name }}")
        assert wait_for_status(first, ("finished",), timeout=60)["counts"]["submitted"] == 20
    # when the next launch, of 30 others, is forecast
    write_contacts(tmp_path / "next.csv", 30, start=100)
    figures = forecast_launch(tmp_path / "next.csv", "uganda", "Hi {{ name }}", media_url=None, at=None,
                              region="UG", phone_column=None, quiet_hours=None)
    # then it costs 30 charges; Socnet tells no currency and no balance
    assert (figures.cost, figures.currency, figures.balance, figures.balance_ok) == (3600, None, None, None)


# ---------------------------------------------------------------- the forecast against a real run


def limiter_span(limiter, rate: float, count: int, margin: float) -> float:
    """Seconds from the first to the last of `count` slots the engine's own limiter grants at `rate` with
    `margin`, booked one interval apart as a worker books them, on a fixed clock (no waiting, no host noise)."""
    key, now, dues = "forecast-check", 1000.0, []
    limiter.backend.forget(key)
    while len(dues) < count:
        piece = min(int(rate), count - len(dues))
        grant = limiter.backend.book(key, rate=rate, policy=limiter.policy, count=piece, spaced=True,
                                     horizon=3600.0, margin=margin, now=now)
        assert grant.taken
        dues += grant.due
    limiter.backend.forget(key)
    return dues[-1] - dues[0]


def test_the_forecast_against_a_real_run_of_2000(tmp_path, blast_home, postgres_server_url, redis_url, sandbox):
    """2,000 recipients at 200/s through a real worker (8 threads; Postgres; Redis as broker and limiter) and
    beat, to the sandbox's HTTP API holding 2,500 quota.

    What is compared, and why. When the host keeps up (load 4 on this 2-core machine) the run took what the
    forecast says: 11.6 s from the launch (11.1 s of sending) against 11.1 s (10.5 s). Shared with other test
    runs (load 7 to 10), the same run measured 12.1, 13.6 and 18.0 s of sending, with seconds at 40 messages:
    the workers, Postgres and the sandbox starve for CPU, which no forecast can know, and 2,000 at 100/s did
    no better than 70/s. So
    the wall clock only bounds the forecast from one side (the engine never sends faster than the forecast:
    its time is a floor), and the forecast's time is checked within 10% against the engine's own accounting
    of its pace: the slots its rate limiter grants (Redis, the workers' own script) for 2,000 messages at
    200/s with the margin the run's worker really booked with (kept in the account's limiter hash), on a
    fixed clock, plus the start the run really took (from the launch to the first message accepted).
    The cost is checked against the sandbox's own credit: the run used what the forecast said it would."""
    from campaigns import lifecycle
    from campaigns.cli.campaigns import forecast_launch
    from campaigns.settings import reset_settings
    from tests.support.engine import SentTasks, engine_processes, fresh_env, wait_for_status
    from tests.support.waiting import wait_until
    from workers.app import app
    from workers.rate_limits import get_limiter

    env = fresh_env(tmp_path, postgres_server_url, services.REDIS_DATABASES["forecast"])
    write_config(tmp_path / "blast.toml", sandbox, {"india": {"provider": "httpapi", "rate": 200}})
    write_contacts(tmp_path / "c.csv", 2000)
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, quota=2500)
    with engine_processes(env, tmp_path / "logs") as processes, SentTasks(env["BLAST_BROKER_URL"]) as sent:
        processes.worker("w1", concurrency=8)
        processes.beat()
        # (in production the worker and beat are up before a launch: so here)
        wait_until(lambda: app.control.ping(timeout=0.5), timeout=60, message="the worker to answer")
        wait_until(lambda: sent.published("blast.pace"), timeout=60, message="beat to pace")
        reset_settings()
        # given the forecast of the launch
        figures = forecast_launch(tmp_path / "c.csv", "india", "Hello {{ name }}", media_url=None, at=None,
                                  region="UG", phone_column=None, quiet_hours=None)
        # when the campaign is launched and runs to its end
        launched = datetime.now(UTC)
        campaign_id, _ = lifecycle.launch(tmp_path / "c.csv", account_name="india", template="Hello {{ name }}")
        try:
            final = wait_for_status(campaign_id, ("finished",), timeout=180)
        except AssertionError:
            print(processes.logs())
            raise
        with processes.engine.connect() as connection:
            first, last = connection.execute(select(func.min(Message.submitted_at), func.max(Message.submitted_at))
                                             .where(Message.campaign_id == campaign_id)).one()
        limiter = get_limiter()
        booked_margin = float(limiter.backend.client.hget(limiter.backend.keys("india")[0], "margin"))
        paced = limiter_span(limiter, 200, 2000, booked_margin)
    first, last = first.replace(tzinfo=UTC), last.replace(tzinfo=UTC)
    started, took, sending = ((first - launched).total_seconds(), (last - launched).total_seconds(),
                              (last - first).total_seconds())
    print(f"forecast: {figures.eta_seconds:.2f} s, {figures.send_seconds:.2f} s sending; run: {took:.2f} s, "
          f"{sending:.2f} s sending, started after {started:.2f} s; limiter: {paced:.2f} s at margin "
          f"{booked_margin * 1000:.0f} ms")
    # then every recipient was sent once, and the status says all of it is done
    assert final["total"] == 2000 and final["counts"]["submitted"] == 2000
    status = json.loads(blast("status", str(campaign_id), "--json", env={**os.environ, **env}).stdout)
    assert (status["status"], status["progress"], status["eta_seconds"]) == ("finished", 1.0, None)
    assert figures.valid == 2000 and figures.days == 1
    # and the engine's own pace is the forecast's, within 10%: the send, and the whole from the launch
    assert figures.send_seconds == pytest.approx(paced, rel=0.10)
    assert figures.eta_seconds == pytest.approx(started + paced, rel=0.10)
    # and no run is faster than the forecast allows (a slower one is the host's, not the engine's)
    assert sending >= 0.9 * figures.send_seconds and took >= 0.9 * figures.eta_seconds
    # and the run used of the sandbox's credit what the forecast said it would cost
    assert (figures.cost, figures.currency, figures.balance, figures.balance_ok) == (2000, "quota", 2500, True)
    assert sandbox.knobs("httpapi", HTTPAPI_TOKEN)["knobs"]["quota"] == figures.balance - figures.cost
