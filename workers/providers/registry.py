"""The registry of gateways: every module in this package that defines a `ProviderClient` subclass is one
gateway, found by name. Adding a gateway is adding its module (and its sandbox module); nothing else
lists providers."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from workers.providers.base import GatewaySpec, ProviderClient

# Modules of this package that are not gateways.
SHARED_MODULES = frozenset({"base", "events", "registry"})


@cache
def _load() -> dict[str, type[ProviderClient]]:
    package = importlib.import_module("workers.providers")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in SHARED_MODULES and not module.name.startswith("_"):
            importlib.import_module(f"workers.providers.{module.name}")
    return dict(sorted(ProviderClient._registry.items()))


def providers() -> tuple[str, ...]:
    """Every gateway's name, sorted."""
    return tuple(_load())


def client_class(provider: str) -> type[ProviderClient]:
    try:
        return _load()[provider]
    except KeyError:
        raise ValueError(f"no client for provider {provider!r}") from None


def spec_of(provider: str) -> GatewaySpec:
    """The gateway's declarative spec (credentials, kinds, limits, what it offers)."""
    return client_class(provider).spec
