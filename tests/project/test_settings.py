"""Settings from the environment and accounts from blast.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from campaigns.settings import (
    ConfigError,
    Settings,
    get_account,
    load_accounts,
    parse_accounts,
    reset_settings,
)


def test_defaults_are_the_embedded_stack(blast_home):
    settings = Settings()
    assert settings.database_url == f"sqlite:///{(blast_home / 'blast.db').as_posix()}"
    assert settings.broker_url == "filesystem://"
    assert settings.redis_url is None


def test_environment_overrides(monkeypatch, blast_home):
    monkeypatch.setenv("BLAST_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("BLAST_BROKER_URL", "redis://127.0.0.1:6379/1")
    monkeypatch.setenv("BLAST_REDIS_URL", "redis://127.0.0.1:6379/2")
    settings = Settings()
    assert (settings.database_url, settings.broker_url, settings.redis_url) == (
        "postgresql+psycopg://u@h/db", "redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379/2")


def test_accounts_read_secrets_from_the_environment(tmp_path, monkeypatch, blast_home):
    # given a blast.toml whose secrets are ${VAR} references
    monkeypatch.setenv("SOCNET_API_KEY", "k" * 32)
    monkeypatch.setenv("HOOK", "s3cret")
    config = tmp_path / "blast.toml"
    config.write_text(
        '[accounts.uganda]\nprovider = "socnet"\nbase_url = "https://www.socnetsolutions.com"\n'
        'api_key = "${SOCNET_API_KEY}"\nrate = 20\nwebhook_secret = "${HOOK}"\n'
    )
    monkeypatch.setenv("BLAST_CONFIG", str(config))
    reset_settings()
    # when it is loaded
    account = get_account("uganda")
    # then the values come from the environment and never print
    assert account.secret("api_key") == "k" * 32
    assert account.rate == 20
    assert "s3cret" not in repr(account) and "k" * 32 not in repr(account)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"provider": "socnet", "base_url": "x", "api_key": "${NOPE_NOT_SET}", "rate": 5},
         "account 'a': api_key refers to ${NOPE_NOT_SET}, which is not set"),
        ({"provider": "whatsup", "base_url": "x", "rate": 5}, "account 'a': provider 'whatsup' is unknown"),
        ({"provider": "socnet", "base_url": "x", "api_key": "k", "rate": 0}, "account 'a': rate:"),
        ({"provider": "socnet", "base_url": "x", "api_key": "k", "rate": "fast"}, "account 'a': rate:"),
        ({"provider": "smsglobal", "base_url": "x", "api_key": "k", "rate": 5},
         "account 'a': api_secret is required for provider smsglobal"),
        ({"provider": "socnet", "base_url": "x", "api_key": "k", "rate": 5, "colour": "red"},
         "account 'a': colour:"),
    ],
)
def test_bad_accounts_are_clear_errors_naming_account_and_key(table, message, monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as error:
        parse_accounts({"accounts": {"a": table}})
    assert str(error.value).startswith(message)


def test_unknown_account_lists_the_known_ones(tmp_path, monkeypatch, blast_home):
    config = tmp_path / "blast.toml"
    config.write_text('[accounts.one]\nprovider = "httpapi"\nbase_url = "http://x"\ntoken = "t"\nrate = 3\n')
    monkeypatch.setenv("BLAST_CONFIG", str(config))
    reset_settings()
    assert list(load_accounts()) == ["one"]
    with pytest.raises(ConfigError, match="unknown account 'two' \\(known: one\\)"):
        get_account("two")


def test_the_example_config_is_valid(monkeypatch):
    import tomllib
    from pathlib import Path

    document = tomllib.loads((Path(__file__).resolve().parents[2] / "blast.example.toml").read_text())
    for table in document["accounts"].values():
        for value in table.values():
            if isinstance(value, str) and value.startswith("${"):
                monkeypatch.setenv(value[2:-1], "x")
    accounts = parse_accounts(document)
    assert sorted(account.provider for account in accounts.values()) == [
        "devino", "httpapi", "metacloud", "smsglobal", "socnet"]
    # metacloud's base_url and rate are Meta's when the table gives none
    assert (accounts["meta"].base_url, accounts["meta"].rate) == ("https://graph.facebook.com", 80)


@pytest.mark.parametrize(("table", "message"), [
    ({"provider": "socnet", "base_url": "x", "api_key": "k", "rate": 5, "timezone": "Mars/Olympus"},
     "account 'a': timezone:"),
    ({"provider": "socnet", "base_url": "x", "api_key": "k", "rate": 5, "on_unknown": "guess"},
     "account 'a': on_unknown:"),
    ({"provider": "httpapi", "base_url": "x", "token": "t", "rate": 5, "access_token": "s"},
     "account 'a': access_token: Extra inputs are not permitted (not a key of provider httpapi)"),
])
def test_account_time_zones_and_unknown_policies_are_checked(table, message):
    with pytest.raises(ConfigError) as error:
        parse_accounts({"accounts": {"a": table}})
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("zone", ["Australia/Sydney", "+10:00", "-05:00", "+0530", "UTC"])
def test_an_account_zone_is_a_name_or_an_offset(zone):
    account = parse_accounts({"accounts": {"a": {"provider": "smsglobal", "base_url": "x", "api_key": "k",
                                                 "api_secret": "s", "rate": 5, "timezone": zone}}})["a"]
    assert account.zone is not None and "s" not in repr(account).split("api_secret=")[1][:20]


# ---------------------------------------------------------------- configuration errors are one line


def _blast(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from campaigns.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env},
                          cwd=Path(__file__).resolve().parents[2])


@pytest.mark.parametrize(("args", "env", "words"), [
    (("status",), {"BLAST_DATABASE_URL": "postgresql+psycopg://someone:pw0rd@127.0.0.1:1/x"},
     "the database (BLAST_DATABASE_URL) cannot be reached"),
    (("migrate",), {"BLAST_DATABASE_URL": "postgresql+psycopg://someone:pw0rd@127.0.0.1:1/x"},
     "the database (BLAST_DATABASE_URL) cannot be reached"),
    (("status",), {"BLAST_DATABASE_URL": "nonsense://"}, "BLAST_DATABASE_URL is not a database URL"),
    (("status",), {"BLAST_MAX_UPLOAD_BYTES": "abc"}, "BLAST_MAX_UPLOAD_BYTES: Input should be a valid integer"),
    (("worker",), {"BLAST_DATABASE_URL": "postgresql+psycopg://someone:pw0rd@127.0.0.1:1/x"},
     "the database (BLAST_DATABASE_URL) cannot be reached"),
])
def test_configuration_errors_are_one_line_never_a_traceback(tmp_path, args, env, words):
    done = _blast(*args, env={"BLAST_HOME": str(tmp_path), "BLAST_CONFIG": str(tmp_path / "none.toml"), **env})
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], done.stderr
    assert "pw0rd" not in done.stderr and "Traceback" not in done.stderr


def test_a_process_refuses_to_start_when_blast_toml_names_a_missing_variable(tmp_path):
    (tmp_path / "blast.toml").write_text('[accounts.a]\nprovider = "socnet"\nbase_url = "x"\n'
                                         'api_key = "${NOT_SET_ANYWHERE_42}"\nrate = 5\n', encoding="utf-8")
    done = _blast("web", "--port", "1", env={"BLAST_HOME": str(tmp_path), "BLAST_CONFIG": str(tmp_path / "blast.toml")})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: account 'a': api_key refers to ${NOT_SET_ANYWHERE_42}, which is not set in the environment"]
