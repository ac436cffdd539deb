"""Ingest benchmark: a generated contact CSV into SQLite and into Postgres; rows/s and peak memory.

    python bench/ingest.py --rows 1000000      # the goal: >= 100,000 rows/s into Postgres, <= 500 MB
    python bench/ingest.py --rows 20000        # a quick smoke run
    python bench/ingest.py --big               # and a 10,000,000-row CSV and a 1,000,000-row .xlsx

The CSV (messy numbers, mostly Ugandan, some invalid, some repeated; names and dates) is written to a
temporary folder. Postgres gets a fresh database on the local server (BLAST_BENCH_POSTGRES_URL, default
the test server), migrated, then dropped. Each ingest runs in a fresh process: its peak memory is that
process's RSS high-water mark (getrusage ru_maxrss), interpreter and libraries included, and its helper's
(the process that checks the next chunk's numbers) beside it. Rows/s counts
every row of the file (valid and skipped alike) over the whole ingest job, as `blast launch` runs it
(campaigns.ingest.jobs): reading, number checks, rendering, writing, each chunk's commit with the job's
progress, and the check before launch. For each database the script then times the database alone
inserting the same rows into a second campaign (see _database_ceiling): the ceiling no client passes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text

from bench import scratch_database
from campaigns import db
from tests.support.samples import write_contacts_csv

TEMPLATE = "Hello {{ name }}, your appointment is on {{ appointment }}. Reply STOP to opt out."


def _new_campaign(engine) -> int:
    from sqlmodel import Session

    from campaigns.models import Account, Campaign

    with Session(engine) as session:
        if session.get(Account, "bench") is None:
            session.add(Account(name="bench", provider="socnet", rate=80))
        campaign = Campaign(name="bench", account_name="bench", template=TEMPLATE)
        session.add(campaign)
        session.commit()
        return campaign.id


def _ingest(url: str, path: str, chunk_rows: int | None, results, ceiling: bool) -> None:
    """In a fresh process: one campaign's ingest job run to its end, as `blast launch` runs it (every chunk
    committed with the job's progress, the check before launch), without the launch itself (nothing is sent);
    report time, counts and peak RSS."""
    import json

    from campaigns import lifecycle
    from campaigns.ingest import jobs
    from campaigns.models import IngestJob, Message
    from campaigns.settings import get_account

    os.environ["BLAST_DATABASE_URL"] = url
    if chunk_rows:
        os.environ["BLAST_INGEST_CHUNK_ROWS"] = str(chunk_rows)
    engine = db.engine_for(url)
    campaign_id, job_id = lifecycle.create_campaign(
        account=get_account("bench"), template=TEMPLATE, name="bench", media_url=None, region="UG",
        source_file=path, options=None, ingest={"start": False})
    started = time.perf_counter()
    jobs.run(engine, job_id)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux: this process, spawned fresh
    helper_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the phone checks' helper process
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(Message)
                                    .where(Message.campaign_id == campaign_id)).scalar_one()
        report = json.loads(connection.execute(select(IngestJob.report).where(IngestJob.id == job_id)).scalar_one())
    results.put({"seconds": seconds, "report": report, "stored": stored, "peak_mb": peak_kib / 1024,
                 "helper_mb": helper_kib / 1024,
                 "ceiling": _database_ceiling(engine, campaign_id, stored) if ceiling else None})
    engine.dispose()


# What an ingest writes (campaigns.ingest.writers: the other columns are the database's defaults).
COLUMNS = "row_number, phone, raw_phone, variables, body, state, skip_reason"


def _database_ceiling(engine, campaign_id: int, rows: int) -> float:
    """Rows/s the database itself takes these same rows at, into another campaign of the same table.

    Postgres: the rows are first copied out to a file, already formatted, then timed while COPY reads
    them back in 1 MB blocks. SQLite: INSERT ... SELECT. Either way no client work (no parsing, no
    checks): the same table, indexes and foreign key. Ingest can approach this figure, not pass it.
    """
    other = _new_campaign(engine)
    if engine.dialect.name != "postgresql":
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO message (campaign_id, {COLUMNS}) "
                                    f"SELECT :other, {COLUMNS} FROM message WHERE campaign_id = :campaign"),
                               {"other": other, "campaign": campaign_id})
        return rows / (time.perf_counter() - started)
    with tempfile.TemporaryFile() as dump:
        raw = engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            with cursor.copy(f"COPY (SELECT {int(other)}, {COLUMNS} FROM message "
                             f"WHERE campaign_id = {int(campaign_id)}) TO STDOUT (FORMAT csv)") as copy:
                for block in copy:
                    dump.write(block)
            raw.commit()
            dump.seek(0)
            started = time.perf_counter()
            with cursor.copy(f"COPY message (campaign_id, {COLUMNS}) FROM STDIN (FORMAT csv)") as copy:
                while block := dump.read(1 << 20):
                    copy.write(block)
            raw.commit()
            return rows / (time.perf_counter() - started)
        finally:
            raw.close()


def _run(name: str, url: str, csv_path: Path, chunk_rows: int | None, *, ceiling: bool = True) -> dict:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    load_before = os.getloadavg()[0]
    process = context.Process(target=_ingest, args=(url, str(csv_path), chunk_rows, results, ceiling))
    process.start()
    while True:
        try:
            outcome = results.get(timeout=1)
            break
        except queue.Empty:
            if not process.is_alive():
                raise SystemExit(f"{name}: the ingest process failed (exit {process.exitcode})") from None
    process.join()
    rows = outcome["report"]["rows"]
    if outcome["stored"] != rows:
        raise SystemExit(f"{name}: {outcome['stored']} message rows stored for {rows} rows read")
    seconds = outcome["seconds"]
    print(f"{name:9s} {rows:>10,} rows in {seconds:7.2f} s = {rows / seconds:>9,.0f} rows/s, "
          f"peak RSS {outcome['peak_mb']:6.1f} MB + helper {outcome['helper_mb']:5.1f} MB "
          f"(load average before {load_before:.2f}, "
          f"after {os.getloadavg()[0]:.2f})")
    if outcome["ceiling"] is not None:
        print(f"{'':9s} the database alone takes the same rows at {outcome['ceiling']:>9,.0f} rows/s "
              f"(no client work)")
    return outcome


def _sqlite(folder: Path, csv_path: Path, chunk_rows: int | None) -> dict:
    url = f"sqlite:///{(folder / 'bench.db').as_posix()}"
    db.migrate(url)
    db.engine_for(url).dispose()
    return _run("sqlite", url, csv_path, chunk_rows)


def _postgres(csv_path: Path, chunk_rows: int | None, *, name: str = "postgres", ceiling: bool = True) -> dict:
    url = scratch_database.create()
    try:
        db.migrate(url)
        db.engine_for(url).dispose()
        return _run(name, url, csv_path, chunk_rows, ceiling=ceiling)
    finally:
        scratch_database.drop(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to generate (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk-rows", type=int, default=None, help="ingest chunk size (default: settings)")
    parser.add_argument("--backend", choices=["both", "sqlite", "postgres"], default="both")
    parser.add_argument("--big", action="store_true",
                        help="also 10,000,000 CSV rows and a 1,000,000-row .xlsx into Postgres (a few minutes)")
    args = parser.parse_args()

    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="blast-bench-") as folder:
        folder_path = Path(folder)
        config = folder_path / "blast.toml"
        config.write_text('[accounts.bench]\nprovider = "socnet"\nbase_url = "http://127.0.0.1:9"\n'
                          'api_key = "bench"\nrate = 80\n', encoding="utf-8")
        os.environ["BLAST_CONFIG"] = str(config)
        os.environ["BLAST_HOME"] = str(folder_path / "home")
        os.environ["BLAST_MAX_ROWS_PER_FILE"] = str(10_000_000)
        os.environ["BLAST_MAX_UPLOAD_BYTES"] = str(2_000_000_000)
        csv_path = folder_path / "contacts.csv"
        started = time.perf_counter()
        write_contacts_csv(csv_path, args.rows, seed=args.seed)
        print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.1f} MB) "
              f"in {time.perf_counter() - started:.1f} s")
        outcome = None
        if args.backend in ("both", "sqlite"):
            outcome = _sqlite(folder_path, csv_path, args.chunk_rows)
        if args.backend in ("both", "postgres"):
            outcome = _postgres(csv_path, args.chunk_rows)
        if outcome is not None:
            print(f"report: {outcome['report']}")
        if args.big:
            _big(folder_path, args.seed, args.chunk_rows)


def _big(folder: Path, seed: int, chunk_rows: int | None) -> None:
    """Any size of file: 10,000,000 CSV rows, and a 1,000,000-row workbook (the most Excel holds is 1,048,576)."""
    from openpyxl import Workbook

    from tests.support.samples import contact_rows

    big_csv = folder / "ten-million.csv"
    started = time.perf_counter()
    write_contacts_csv(big_csv, 10_000_000, seed=seed)
    print(f"generated 10,000,000 rows ({big_csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")
    _postgres(big_csv, chunk_rows, name="10M csv", ceiling=False)
    big_csv.unlink()

    workbook_path = folder / "one-million.xlsx"
    started = time.perf_counter()
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("contacts")
    sheet.append(["Phone", "Name", "Appointment"])
    for row in contact_rows(1_000_000, seed=seed):
        sheet.append(list(row))
    workbook.save(workbook_path)
    print(f"generated a 1,000,000-row workbook ({workbook_path.stat().st_size / 1e6:.0f} MB) "
          f"in {time.perf_counter() - started:.0f} s")
    _postgres(workbook_path, chunk_rows, name="1M xlsx", ceiling=False)


if __name__ == "__main__":
    main()
