"""HTTP client benchmark: the worker CPU one gateway call costs with each Python HTTP client, on a kept-alive
connection to the sandbox's Socnet (no latency). Decides which client the send path uses.

Clients: `requests.Session` (what Blast uses, with its slot-deadline adapter), `requests.Session` bare,
`urllib3.PoolManager` directly, `httpx.Client`, and Blast's Socnet client end to end (build, send, classify).
Prints CPU milliseconds per call and calls per second for each; asserts nothing.

Usage: python bench/http_clients.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import requests  # noqa: E402
import urllib3  # noqa: E402

from campaigns.settings import AccountConfig  # noqa: E402
from workers.providers import Outbound  # noqa: E402
from workers.providers.registry import client_class  # noqa: E402
from workers.sandbox.harness import DEFAULT_CREDENTIALS, SandboxProcess  # noqa: E402

PATH = "/socnet/projects/bulk/whatsapp/api.php"


def _payload(i: int) -> dict:
    return {"api_key": DEFAULT_CREDENTIALS["socnet"]["key"], "msisdn": f"25677{i % 10_000_000:07d}",
            "msg": f"Hello {i}, your appointment is tomorrow."}


def measure(name: str, call, calls: int) -> None:
    for i in range(50):  # warm-up: connections open, caches filled
        call(i)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(calls):
        call(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"  {name:<34} {cpu * 1000 / calls:6.3f} ms CPU/call   {calls / wall:7.0f} calls/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    calls = parser.parse_args().calls
    with SandboxProcess() as sandbox:
        url = sandbox.url + PATH
        print(f"== one call = one Socnet send on a kept-alive loopback connection ({calls} calls each)")

        session = requests.Session()
        session.trust_env = False
        measure("requests.Session", lambda i: session.post(url, json=_payload(i), timeout=5).json(), calls)

        pool = urllib3.PoolManager(maxsize=4)
        headers = {"Content-Type": "application/json"}
        measure("urllib3.PoolManager", lambda i: json.loads(pool.request(
            "POST", url, body=json.dumps(_payload(i)).encode(), headers=headers, timeout=5).data), calls)

        client = httpx.Client(trust_env=False, timeout=5)
        measure("httpx.Client", lambda i: client.post(url, json=_payload(i)).json(), calls)

        account = AccountConfig(name="bench", provider="socnet", rate=10_000, base_url=sandbox.base_url("socnet"),
                                api_key=DEFAULT_CREDENTIALS["socnet"]["key"])
        blast = client_class("socnet")(account)
        measure("Blast's Socnet client (end to end)", lambda i: blast.send(Outbound(
            message_id=i, to=f"+25677{i % 10_000_000:07d}", text=f"Hello {i}", kind="text", options={})), calls)


if __name__ == "__main__":
    main()
