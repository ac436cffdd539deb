"""Every limiter test runs on both backends: in-process and Redis."""

from __future__ import annotations

import uuid

import pytest

from workers.rate_limits import LocalBackend, RedisBackend


@pytest.fixture(params=["local", "redis"])
def backend(request):
    if request.param == "local":
        return LocalBackend()
    return RedisBackend.from_url(request.getfixturevalue("redis_url"))


@pytest.fixture
def key(request):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    if "backend" in request.fixturenames:
        request.getfixturevalue("backend").forget(name)
