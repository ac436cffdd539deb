"""Settings from the environment and accounts from blast.toml."""

from __future__ import annotations

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

    document = tomllib.loads((Path(__file__).parent.parent / "blast.example.toml").read_text())
    for table in document["accounts"].values():
        for value in table.values():
            if isinstance(value, str) and value.startswith("${"):
                monkeypatch.setenv(value[2:-1], "x")
    accounts = parse_accounts(document)
    assert sorted(account.provider for account in accounts.values()) == ["devino", "httpapi", "smsglobal", "socnet"]
