"""The command-line contract for campaigns: launch prints the id, status --json has DESIGN.md's shape,
pause/resume/cancel/retry/export work, and operator errors are one line with exit code 1."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from campaigns.states import MessageState
from tests.support.engine import ROOT, write_contacts

CONFIG = '[accounts.acct]\nprovider = "socnet"\nbase_url = "http://127.0.0.1:9/socnet"\napi_key = "k"\nrate = 5\n'


def blast(*args, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "campaigns.cli", *args], cwd=ROOT, capture_output=True,
                            text=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def cli_env(database_url, tmp_path, monkeypatch):
    import os

    (tmp_path / "blast.toml").write_text(CONFIG)
    env = {**os.environ, "BLAST_DATABASE_URL": database_url, "BLAST_CONFIG": str(tmp_path / "blast.toml"),
           "BLAST_BROKER_URL": "memory://"}
    return env


def test_launch_prints_the_id_and_status_json_has_the_contract_shape(cli_env, tmp_path):
    # given a contact list with one bad row
    write_contacts(tmp_path / "c.csv", 5)
    with (tmp_path / "c.csv").open("a") as stream:
        stream.write("Bad,12\n")
    # when it is launched at a later time (so nothing is sent) and its status read
    launched = blast("launch", str(tmp_path / "c.csv"), "--account", "acct", "--template", "Hi {{ name }}",
                     "--name", "contract", "--at", "2999-01-01T09:00+00:00", env=cli_env)
    campaign_id = int(launched.stdout.strip())
    report = json.loads(blast("status", str(campaign_id), "--json", env=cli_env).stdout)
    # then the JSON has every key of the contract and every message state
    assert set(report) >= {"id", "name", "status", "total", "counts"}
    assert (report["id"], report["name"], report["status"], report["total"]) == (campaign_id, "contract",
                                                                                "scheduled", 6)
    assert set(report["counts"]) == {state.value for state in MessageState}
    assert report["counts"]["pending"] == 5 and report["counts"]["skipped"] == 1


def test_pause_resume_cancel_and_export(cli_env, tmp_path):
    write_contacts(tmp_path / "c.csv", 3)
    campaign_id = blast("launch", str(tmp_path / "c.csv"), "--account", "acct", "--template", "=cmd|' /C calc'!A0",
                        "--at", "2999-01-01T09:00", env=cli_env).stdout.strip()
    blast("pause", campaign_id, env=cli_env)
    assert json.loads(blast("status", campaign_id, "--json", env=cli_env).stdout)["status"] == "paused"
    blast("resume", campaign_id, env=cli_env)
    blast("cancel", campaign_id, env=cli_env)
    report = json.loads(blast("status", campaign_id, "--json", env=cli_env).stdout)
    assert report["status"] == "cancelled" and report["counts"]["cancelled"] == 3
    exported = list(csv.DictReader(io.StringIO(blast("export", campaign_id, env=cli_env).stdout)))
    assert len(exported) == 3
    # E.164 numbers start with "+": a spreadsheet would read them as formulas, so they are neutralised
    assert all(row["phone"].startswith("'+256") and row["state"] == "cancelled" for row in exported)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "999", "--json"], "no campaign with id 999"),
        (["pause", "999"], "no campaign with id 999"),
        (["launch", "missing.csv", "--account", "nope", "--template", "x"], "unknown account 'nope'"),
        (["launch", "c.csv", "--account", "acct", "--template", "x", "--at", "tomorrowish"], "is not a time"),
    ],
)
def test_operator_errors_are_one_line(cli_env, tmp_path, args, message):
    write_contacts(tmp_path / "c.csv", 1)
    result = blast(*[str(tmp_path / a) if a == "c.csv" else a for a in args], env=cli_env, check=False)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
