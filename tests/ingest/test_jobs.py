"""Ingest jobs (campaigns.ingest.jobs): a run stopped anywhere goes on where it stopped, with no row written
twice and the campaign launched once; one run at a time holds a job; failures are kept with their reason."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from campaigns import lifecycle
from campaigns.errors import BlastError
from campaigns.ingest import jobs
from campaigns.models import Campaign, IngestJob, Message, utcnow
from campaigns.settings import get_account, reset_settings
from tests.support.engine import write_config

ROWS = 1_000
CHUNK = 100


@pytest.fixture
def contacts(tmp_path):
    """1,000 rows: every tenth number repeats an earlier one, every 25th has letters."""
    path = tmp_path / "contacts.csv"
    lines = ["name,phone"]
    for row in range(ROWS):
        number = f"+2567720{row:05d}" if row % 10 else f"+2567720{row - 5:05d}" if row else "+256772000000"
        if row % 25 == 7:
            number = "07720ABC12"
        lines.append(f"Person {row},{number}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def configured(tmp_path, sandbox, monkeypatch, engine):
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 10}})
    monkeypatch.setenv("BLAST_INGEST_CHUNK_ROWS", str(CHUNK))
    monkeypatch.setenv("BLAST_INGEST_LEASE_SECONDS", "30")
    reset_settings()
    yield engine
    reset_settings()


def new_job(path, **options) -> tuple[int, int]:
    """A draft campaign of `path` and its queued job, as a launch makes them."""
    return lifecycle.create_campaign(account=get_account("acct"), template="Hi {{ name }}", name="jobs",
                                     media_url=None, region="UG", source_file=str(path), options=None,
                                     ingest=options)


def written(engine, campaign_id: int) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(select(Message.row_number).where(Message.campaign_id == campaign_id)
                                       .order_by(Message.row_number)).scalars())


def job_row(engine, job_id: int):
    with engine.connect() as connection:
        return connection.execute(select(IngestJob).where(IngestJob.id == job_id)).one()


def status_of(engine, campaign_id: int) -> str:
    with engine.connect() as connection:
        return connection.execute(select(Campaign.status).where(Campaign.id == campaign_id)).scalar_one()


class Stop(Exception):
    """The process running the job dies here."""


def stop_after(chunks: int):
    seen = []

    def on_progress(report, _fraction):
        seen.append(report.rows)
        if len(seen) > chunks:
            raise Stop
    return on_progress


def test_a_run_stopped_midway_goes_on_after_its_last_written_row(configured, contacts):
    engine = configured
    # given a clean run of the same file, for its report
    _, reference_job = new_job(contacts, start=False)
    jobs.run(engine, reference_job)
    expected = json.loads(job_row(engine, reference_job).report)
    # and a job whose run stops (its process killed) after three chunks are read
    campaign_id, job_id = new_job(contacts)
    with pytest.raises(Stop):
        jobs.run(engine, job_id, token="first", on_progress=stop_after(3))
    stopped = job_row(engine, job_id)
    assert stopped.status == "running" and 0 < stopped.rows_done < ROWS + 1
    assert written(engine, campaign_id) == list(range(2, stopped.rows_done + 1))
    assert status_of(engine, campaign_id) == "draft"
    # when another run takes it over once the lease has lapsed
    assert jobs.run(engine, job_id, token="second") is None  # the lease still holds
    with engine.begin() as connection:
        connection.execute(update(IngestJob).values(lease_until=utcnow() - timedelta(seconds=1)))
    assert jobs.run(engine, job_id, token="second") == "running"
    # then every row is written once, the report is the clean run's, and the campaign is launched once
    assert written(engine, campaign_id) == list(range(2, ROWS + 2))
    done = job_row(engine, job_id)
    assert done.status == "done" and done.attempts == 2 and json.loads(done.report) == expected
    assert (done.rows, done.valid, done.skipped) == (ROWS, expected["valid"], ROWS - expected["valid"])
    assert status_of(engine, campaign_id) == "running"
    assert jobs.run(engine, job_id, token="third") is None  # over: nothing to take


def test_the_check_before_launch_finds_a_row_or_a_recipient_twice(configured, contacts):
    engine = configured
    campaign_id, job_id = new_job(contacts, start=False)
    jobs.run(engine, job_id)
    with engine.connect() as connection:
        assert jobs.check_written(connection, campaign_id, ROWS) is None
        assert jobs.check_written(connection, campaign_id, ROWS + 1) == "1,000 messages written for 1,001 rows"
    # given a row written a second time, then a recipient in the campaign twice
    with engine.begin() as connection:
        connection.execute(Message.__table__.insert().values(campaign_id=campaign_id, row_number=5, phone=None,
                                                             state="skipped", variables="{}"))
        assert jobs.check_written(connection, campaign_id, ROWS + 1) == "row 5 written twice"
        connection.execute(Message.__table__.insert().values(campaign_id=campaign_id, row_number=ROWS + 2,
                                                             phone="+256772000003", state="pending", variables="{}"))
        connection.execute(Message.__table__.delete().where(Message.row_number == 5, Message.phone.is_(None)))
        assert jobs.check_written(connection, campaign_id, ROWS + 1) == "a recipient is in the campaign twice"


def test_a_run_whose_lease_was_taken_writes_nothing_more(configured, contacts):
    engine = configured
    campaign_id, job_id = new_job(contacts)
    taken = []

    def another_run_takes_over(report, _fraction):
        if report.rows >= 2 * CHUNK and not taken:  # this run stalled; its lease lapsed; another took the job
            with engine.begin() as connection:
                connection.execute(update(IngestJob).values(lease_token="other"))
            taken.append(len(written(engine, campaign_id)))

    # when its next chunk is to be written, then it stops, and that chunk is not
    with pytest.raises(jobs.LeaseLost):
        jobs.run(engine, job_id, token="mine", on_progress=another_run_takes_over)
    assert len(written(engine, campaign_id)) <= taken[0] + CHUNK
    assert status_of(engine, campaign_id) == "draft"


def test_a_file_that_cannot_be_read_fails_its_job_which_can_be_retried_or_discarded(configured, contacts, tmp_path):
    engine = configured
    # given a launch naming a phone column the file does not have
    campaign_id, job_id = new_job(contacts, phone_column="Mobile", display_name="patients.csv")
    # when it runs, then the job fails with the reason, naming the operator's file, and the draft stays
    with pytest.raises(BlastError, match="Mobile"):
        jobs.run(engine, job_id)
    failed = job_row(engine, job_id)
    assert failed.status == "failed" and "Mobile" in failed.error and failed.error.startswith("patients.csv: ")
    assert jobs.for_campaign(engine, campaign_id).error == failed.error
    # when retried, then it is queued again; when discarded, then its draft is cancelled
    assert jobs.retry(engine, job_id) and job_row(engine, job_id).status == "queued"
    assert not jobs.retry(engine, job_id)
    assert jobs.discard(engine, job_id)
    assert job_row(engine, job_id).status == "discarded" and status_of(engine, campaign_id) == "cancelled"
    assert not jobs.discard(engine, job_id)


def test_cancelling_a_draft_stops_its_ingest(configured, contacts):
    engine = configured
    campaign_id, job_id = new_job(contacts)

    def operator_cancels(report, _fraction):
        if report.rows >= CHUNK and status_of(engine, campaign_id) == "draft":
            lifecycle.cancel(campaign_id)

    with pytest.raises(jobs.LeaseLost):
        jobs.run(engine, job_id, on_progress=operator_cancels)
    assert job_row(engine, job_id).status == "discarded" and status_of(engine, campaign_id) == "cancelled"


def test_the_sweep_hands_out_jobs_nobody_runs_once_per_lease(configured, contacts):
    engine = configured
    _, queued = new_job(contacts)
    _, running = new_job(contacts)
    _, fresh = new_job(contacts)
    long_ago = utcnow() - timedelta(minutes=5)
    with engine.begin() as connection:
        connection.execute(update(IngestJob).where(IngestJob.id == queued).values(updated_at=long_ago))
        connection.execute(update(IngestJob).where(IngestJob.id == running).values(
            status="running", lease_token="dead", lease_until=long_ago, updated_at=long_ago))
    # when the reconciler sweeps, then the forgotten queued job and the lapsed one are handed out, once
    assert sorted(jobs.stalled(engine)) == sorted([queued, running])
    assert jobs.stalled(engine) == []
    assert fresh not in jobs.stalled(engine)


def test_a_launch_in_this_process_leaves_nothing_behind_when_the_file_is_refused(configured, tmp_path):
    engine = configured
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nAmina\n", encoding="utf-8")
    with pytest.raises(BlastError):
        lifecycle.launch(bad, account_name="acct", template="Hi")
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Campaign)).scalar_one() == 0
        assert connection.execute(select(func.count()).select_from(IngestJob)).scalar_one() == 0
