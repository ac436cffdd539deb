"""The simulated gateways: every module here defines one `SandboxGateway` subclass, found by a package
scan. Adding a gateway to the sandbox is adding its module; nothing else lists them."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from workers.sandbox.gateways.base import SandboxGateway
from workers.sandbox.state import BuiltinAccount

SHARED_MODULES = frozenset({"base"})


@cache
def gateway_classes() -> dict[str, type[SandboxGateway]]:
    """provider -> its simulated gateway class, sorted by name."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in SHARED_MODULES and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(SandboxGateway._registry.items()))


def providers() -> tuple[str, ...]:
    """Every simulated gateway's name, sorted."""
    return tuple(gateway_classes())


def builtin_accounts() -> dict[str, BuiltinAccount]:
    """provider -> the account the sandbox has for it from the start."""
    return {provider: cls.builtin for provider, cls in gateway_classes().items()}
