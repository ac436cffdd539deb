"""A Redis of the benchmark's own: a `redis-server` on a free port, started at the first call and stopped when the
benchmark ends, so that a benchmark never shares a database with the test suite or another benchmark (each test
module that starts Blast's processes has a database number of the shared Redis; there are only 16).

BLAST_BENCH_REDIS names a Redis to use instead (a URL without a database number).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time

import redis

_url: str | None = None


def base_url() -> str:
    """redis://host:port of the benchmark's Redis (no database number)."""
    global _url
    if _url is None:
        _url = os.environ.get("BLAST_BENCH_REDIS") or _start()
    return _url


def _start() -> str:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed here: set BLAST_BENCH_REDIS to a Redis to use")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    atexit.register(lambda: (server.terminate(), server.wait(timeout=10)))
    url = f"redis://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return url
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise SystemExit("the benchmark's redis-server did not start") from None
            time.sleep(0.05)
