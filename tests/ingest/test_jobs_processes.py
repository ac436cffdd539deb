"""A big upload launched from the web app, with real processes (`blast web`, `blast worker`, `blast beat` on
Postgres and Redis): the web process is killed right after the launch, then the worker reading the list is
killed mid-file; another worker goes on where it stopped. The campaign launches once, with every row once;
and a cut of the way to Postgres mid-file is ridden out the same way."""

from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from campaigns.models import Campaign, IngestJob, Message
from tests.support import services
from tests.support.engine import engine_processes, fresh_env, write_config
from tests.support.outages import TcpProxy
from tests.support.waiting import wait_until
from tests.support.web import csrf_of
from workers.sandbox.harness import SandboxProcess, free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_DB = services.REDIS_DATABASES["ingest_jobs"]
ROWS = 200_000  # about 7 MB: over the 5 MB a web request reads itself
CHUNK = 10_000
ADMIN = ("admin", "ingest-jobs-pass-7d2")


def write_big_list(path) -> None:
    with path.open("w", encoding="utf-8") as stream:
        stream.write("name,phone\n")
        stream.writelines(f"Person {row},+2567{row:08d}\n" for row in range(ROWS))


@pytest.fixture
def stack(tmp_path, postgres_server_url):
    sandbox_log = tmp_path / "logs" / "sandbox.log"
    sandbox_log.parent.mkdir(parents=True)
    with SandboxProcess(log_path=sandbox_log) as sandbox:
        env = fresh_env(tmp_path, postgres_server_url, REDIS_DB, ingest_chunk_rows=CHUNK, ingest_lease_seconds=3,
                        reconcile_every_seconds=1, admin_user=ADMIN[0], admin_password=ADMIN[1])
        # A slow gateway: the campaign is still sending when the test looks at it.
        write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 5}})
        with engine_processes(env, tmp_path / "logs") as processes:
            processes.folder = tmp_path
            yield processes


def start_web(stack, name: str):
    port = free_port()
    web = stack.web(port, name=name)
    base = f"http://127.0.0.1:{port}"
    stack.wait_until_answering(f"{base}/login")
    return web, base


def log_in(base: str) -> tuple[requests.Session, str]:
    operator = requests.Session()
    token = csrf_of(operator.get(f"{base}/login", timeout=10).text)
    home = operator.post(f"{base}/login", data={"username": ADMIN[0], "password": ADMIN[1], "csrf_token": token},
                         timeout=10)
    assert home.status_code == 200, home.text
    return operator, csrf_of(home.text)


def launch_from_the_web(stack, path) -> tuple[object, int]:
    """Log in, upload, launch; returns (the web process, the campaign id)."""
    web, base = start_web(stack, "web")
    operator, token = log_in(base)
    with path.open("rb") as contacts:
        uploaded = operator.post(f"{base}/upload", data={"csrf_token": token}, allow_redirects=False, timeout=60,
                                 files={"file": ("patients.csv", contacts, "text/csv")})
    assert uploaded.status_code == 303, uploaded.text
    launched = operator.post(f"{base}{uploaded.headers['location']}/launch", allow_redirects=False, timeout=30,
                             data={"csrf_token": token, "account": "uganda", "template": "Hi {{ name }}",
                                   "phone_column": "phone", "region": "UG", "name": "big list"})
    assert launched.status_code == 303 and launched.headers["location"].startswith("/launches/"), launched.text
    return web, int(launched.headers["location"].rsplit("/", 1)[1])


def job_of(stack, campaign_id: int):
    with stack.engine.connect() as connection:
        return connection.execute(select(IngestJob).where(IngestJob.campaign_id == campaign_id)).one()


def wait_until_done(stack, campaign_id: int, what: str) -> None:
    """Wait for the campaign's ingest job to be done; on a timeout, show the processes' logs."""
    try:
        wait_until(lambda: job_of(stack, campaign_id).status == "done", timeout=180, interval=0.2, message=what)
    except AssertionError:
        print(stack.logs())
        raise


def assert_launched_once_with_every_row_once(stack, campaign_id: int) -> None:
    with stack.engine.connect() as connection:
        campaign = connection.execute(select(Campaign).where(Campaign.id == campaign_id)).one()
        rows, distinct_rows, live, distinct_live = connection.execute(
            select(func.count(), func.count(func.distinct(Message.row_number)),
                   func.count().filter(Message.state != "skipped"),
                   func.count(func.distinct(Message.phone)).filter(Message.state != "skipped"))
            .where(Message.campaign_id == campaign_id)).one()
    assert campaign.status in ("running", "finished") and campaign.started_at is not None
    assert (rows, distinct_rows, live, distinct_live) == (ROWS, ROWS, ROWS, ROWS)


def test_killing_the_web_then_the_worker_mid_ingest_launches_once_with_every_row_once(stack):
    path = stack.folder / "patients.csv"
    write_big_list(path)
    # given the web app, no worker yet, and a beat (its reconciler sweeps forgotten ingests)
    stack.beat()
    # when the list is launched from the web app, and the web process is killed at once
    web, campaign_id = launch_from_the_web(stack, path)
    stack.kill(web)
    assert job_of(stack, campaign_id).status == "queued"
    # and a worker starts reading it, and is killed mid-file
    first = stack.worker("w1", concurrency=2)
    wait_until(lambda: job_of(stack, campaign_id).rows_done >= 2 * CHUNK, timeout=120, interval=0.05,
               message="the first worker to be mid-file")
    stack.kill(first)
    stopped_at = job_of(stack, campaign_id).rows_done
    assert stopped_at < ROWS
    # then another worker goes on from there once the lease lapses, and the campaign launches
    stack.worker("w2", concurrency=2)
    wait_until_done(stack, campaign_id, "the second worker to finish the list")
    job = job_of(stack, campaign_id)
    assert job.attempts >= 2 and job.rows == ROWS and job.valid == ROWS
    assert_launched_once_with_every_row_once(stack, campaign_id)
    # and a web app started again shows the launch as done: its page leads to the campaign
    _, base = start_web(stack, "web2")
    operator, _ = log_in(base)
    page = operator.get(f"{base}/launches/{campaign_id}", allow_redirects=False, timeout=10)
    assert page.status_code == 303 and page.headers["location"] == f"/campaigns/{campaign_id}?notice=launched"


@pytest.fixture
def database_cut_stack(tmp_path, postgres_server_url):
    """A worker whose way to Postgres goes through a proxy the test can cut."""
    database = make_url(postgres_server_url)
    with TcpProxy((database.host, database.port or 5432)) as proxy, \
            SandboxProcess(log_path=tmp_path / "sandbox.log") as sandbox:
        env = fresh_env(tmp_path, postgres_server_url, REDIS_DB, ingest_chunk_rows=CHUNK, ingest_lease_seconds=3,
                        reconcile_every_seconds=1)
        env["BLAST_DATABASE_URL"] = proxy.url_for(postgres_server_url, 5432)
        write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 5}})
        with engine_processes(env, tmp_path / "logs", here={"BLAST_DATABASE_URL": postgres_server_url}) as processes:
            processes.folder, processes.proxy = tmp_path, proxy
            yield processes


def test_a_database_cut_mid_ingest_is_ridden_out_with_every_row_once(database_cut_stack):
    from campaigns import lifecycle

    stack = database_cut_stack
    path = stack.folder / "patients.csv"
    write_big_list(path)
    stack.worker("w1", concurrency=2)
    stack.beat()
    # given a launch read by a worker (handed to it through the broker)
    campaign_id, _ = lifecycle.launch(path, account_name="uganda", template="Hi {{ name }}", background=True)
    # when the way to Postgres is cut mid-file for a few seconds
    wait_until(lambda: job_of(stack, campaign_id).rows_done >= 2 * CHUNK, timeout=120, interval=0.05,
               message="the worker to be mid-file")
    stack.proxy.cut()
    time.sleep(4)  # the outage itself
    stack.proxy.restore()
    # then the job ends done, the campaign launched once with every row once
    wait_until_done(stack, campaign_id, "the list to be read")
    assert_launched_once_with_every_row_once(stack, campaign_id)
