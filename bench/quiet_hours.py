"""Quiet-hours cost in the pacer: prints figures, asserts nothing.

For each case, a running campaign of 20,000 recipients (half Ugandan, half Japanese numbers) is paced
round after round by `workers.pacer.pace_account` (no broker: the publish step is a no-op, and after each
round the queued messages are marked submitted outside the timing, as workers would). Printed: pacer
milliseconds per 1,000 messages queued.

  none       no quiet hours
  outside    quiet hours, nobody inside the window (every picked message is checked, none held)
  half       quiet hours around Kampala's current time: the Ugandan half waits (one UPDATE), Japan is sent

Usage: python bench/quiet_hours.py [--postgres ADMIN_URL] [--contacts N]   (default SQLite; with Postgres, a
database of its own is created on that server and dropped at the end)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text, update  # noqa: E402

from bench import scratch_database  # noqa: E402
from campaigns import lifecycle  # noqa: E402
from campaigns.db import engine_for, migrate  # noqa: E402
from campaigns.models import Campaign  # noqa: E402
from campaigns.settings import reset_settings  # noqa: E402
from workers import pacer  # noqa: E402

RATE = 1000  # msg/s: with the default 2 s depth, 2,000 messages a round


def write_people(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["name", "phone"])
        for i in range(count):
            writer.writerow([f"P{i}", f"+25677{i:07d}" if i % 2 else f"+81901{i:07d}"])


def window(case: str) -> str | None:
    kampala = datetime.now(ZoneInfo("Africa/Kampala"))
    if case == "none":
        return None
    if case == "outside":  # a window twelve hours away from both Kampala (UTC+3) and Tokyo (UTC+9)
        start = kampala + timedelta(hours=9)
        return f"{start:%H:%M}-{start + timedelta(minutes=30):%H:%M}"
    return f"{kampala - timedelta(hours=1):%H:%M}-{kampala + timedelta(hours=1):%H:%M}"


def run_case(case: str, people: Path, engine) -> tuple[float, int]:
    campaign_id, _ = lifecycle.launch(people, account_name="acct", template="Hi {{ name }}",
                                      quiet_hours=window(case), start=False)
    with engine.begin() as connection:
        connection.execute(update(Campaign).values(status="finished"))
        connection.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="running"))
    spent, queued = 0.0, 0
    while True:
        started = time.perf_counter()
        moved = pacer.pace_account("acct", publish=lambda _campaign, _ids: None, engine=engine)
        spent += time.perf_counter() - started
        if not moved:
            break
        queued += moved
        with engine.begin() as connection:
            connection.execute(text("UPDATE message SET state = 'submitted' WHERE state = 'queued'"))
    return spent, queued


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="a Postgres URL to create a scratch database from")
    parser.add_argument("--contacts", type=int, default=20_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="blast-bench-"))
    url = f"sqlite:///{home / 'blast.db'}"
    if args.postgres:
        url = scratch_database.create(args.postgres, prefix="blast_bench_quiet")
    os.environ.update(BLAST_HOME=str(home), BLAST_DATABASE_URL=url, BLAST_CONFIG=str(home / "blast.toml"))
    (home / "blast.toml").write_text(f'[accounts.acct]\nprovider = "httpapi"\nbase_url = "http://127.0.0.1:9"\n'
                                     f'token = "t"\nrate = {RATE}\n')
    reset_settings()
    migrate(url)
    engine = engine_for(url)
    people = home / "people.csv"
    write_people(people, args.contacts)
    print(f"{'postgres' if args.postgres else 'sqlite'}, {args.contacts:,} recipients, {RATE} msg/s account")
    try:
        for case in ("none", "outside", "half", "none", "outside"):  # twice: the first is also a warm-up
            spent, queued = run_case(case, people, engine)
            print(f"  {case:8} {queued:>6,} queued   {spent * 1e6 / max(queued, 1):7.1f} ms per 1,000 messages")
    finally:
        engine.dispose()
        if args.postgres:
            scratch_database.drop(url, args.postgres)


if __name__ == "__main__":
    main()
