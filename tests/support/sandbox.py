"""The gateway sandbox as the tests use it: its built-in credentials (from the sandbox itself, in one
place), gateway accounts pointing at it, and `Sandbox`, the one harness (`workers.sandbox.harness`'s
`SandboxProcess`) with the accounts it serves."""

from __future__ import annotations

from typing import Any

from campaigns.settings import AccountConfig
from workers.providers.registry import spec_of
from workers.sandbox.gateways.metacloud import WABA_ID as METACLOUD_WABA_ID
from workers.sandbox.harness import DEFAULT_CREDENTIALS, SandboxProcess

SOCNET_KEY = DEFAULT_CREDENTIALS["socnet"]["key"]
SMSGLOBAL_KEY = DEFAULT_CREDENTIALS["smsglobal"]["key"]
SMSGLOBAL_SECRET = DEFAULT_CREDENTIALS["smsglobal"]["secret"]
DEVINO_KEY = DEFAULT_CREDENTIALS["devino"]["key"]
HTTPAPI_TOKEN = DEFAULT_CREDENTIALS["httpapi"]["key"]
METACLOUD_TOKEN = DEFAULT_CREDENTIALS["metacloud"]["key"]
METACLOUD_APP_SECRET = DEFAULT_CREDENTIALS["metacloud"]["secret"]
METACLOUD_VERIFY_TOKEN = "sandbox-verify-token"  # ours: Meta echoes whatever the account chose


def credentials(provider: str) -> dict[str, str]:
    """The built-in sandbox account's key, secret and sender under the names the gateway's spec gives them
    (blast.toml's keys: `api_key`, `api_secret`, `token`, `sender`)."""
    builtin = DEFAULT_CREDENTIALS[provider]
    values = {"api_key": builtin["key"], "token": builtin["key"], "api_secret": builtin.get("secret"),
              "sender": builtin.get("sender", "Blast"), "access_token": builtin["key"],
              "app_secret": builtin.get("secret"), "phone_number_id": builtin.get("sender"),
              "waba_id": METACLOUD_WABA_ID, "verify_token": METACLOUD_VERIFY_TOKEN}
    return {name: values[name] for name in spec_of(provider).credentials}


def account(provider: str, base_url: str = "http://127.0.0.1:9", **overrides: Any) -> AccountConfig:
    """A gateway account with the sandbox's credentials unless overridden."""
    values: dict[str, Any] = {"name": f"test-{provider}", "provider": provider, "base_url": base_url,
                              "rate": 50, **credentials(provider)}
    values.update(overrides)
    return AccountConfig(**values)


class Sandbox(SandboxProcess):
    """`blast sandbox` in a subprocess, and accounts of its built-in gateways."""

    def account(self, provider: str, **overrides: Any) -> AccountConfig:
        return account(provider, self.base_url(provider), **overrides)
