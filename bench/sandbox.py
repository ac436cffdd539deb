"""Sandbox benchmark: the send requests per second `blast sandbox` serves on ONE core, per gateway.

The sandbox runs as `blast sandbox` pinned to one CPU; the load comes from other processes (pinned to the
other CPUs when there are any) that keep many keep-alive connections busy with valid send requests built
here from the gateways' documents (distinct recipients, an SMSGlobal MAC per request). Each gateway is
loaded for a fixed time after a short warm-up; the figure is answers per second, with every answer
checked for HTTP 200. Prints figures, asserts nothing.

Usage: python bench/sandbox.py [--seconds 5] [--connections 64] [--clients N] [--only socnet,devino]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers.sandbox.harness import DEFAULT_CREDENTIALS, SandboxProcess  # noqa: E402

GATEWAYS = ("socnet", "smsglobal", "devino", "httpapi")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DISTINCT_REQUESTS = 2000  # different recipients cycled through by every connection


def _http(method: str, path: str, host: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _smsglobal_mac(secret: str, ts: str, nonce: str, method: str, uri: str, host: str, port: str) -> str:
    # providers/README.md: seven lines, each ending in \n; base64(HMAC-SHA256(api secret, lines)).
    text = f"{ts}\n{nonce}\n{method}\n{uri}\n{host}\n{port}\n\n"
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()


def build_requests(gateway: str, host: str, port: int) -> list[bytes]:
    """Valid single-recipient sends, as a client that read the gateway's document would write them."""
    authority = f"{host}:{port}"
    credentials = DEFAULT_CREDENTIALS[gateway]
    built = []
    for i in range(DISTINCT_REQUESTS):
        text = f"Hello {i}, your appointment is tomorrow at 09:{i % 60:02d}."
        if gateway == "socnet":
            payload = {"api_key": credentials["key"], "msisdn": f"25677{i:07d}", "msg": text}
            body = json.dumps(payload).encode()
            built.append(_http("POST", "/socnet/projects/bulk/whatsapp/api.php", authority, body,
                               {"Content-Type": "application/json"}))
        elif gateway == "smsglobal":
            body = json.dumps({"to": [f"6140{i:07d}"], "message": {"type": "text", "text": text}}).encode()
            uri = "/smsglobal/v2/whatsapp"
            ts, nonce = str(int(time.time())), f"bench{i}"
            mac = _smsglobal_mac(credentials["secret"], ts, nonce, "POST", uri, host, str(port))
            authorization = f'MAC id="{credentials["key"]}", ts="{ts}", nonce="{nonce}", mac="{mac}"'
            built.append(_http("POST", uri, authority, body, {
                "Content-Type": "application/json", "Accept": "application/json",
                "Authorization": authorization}))
        elif gateway == "devino":
            body = json.dumps({"messages": [{"from": credentials["sender"], "to": f"7903{i:07d}",
                                             "text": text}]}).encode()
            built.append(_http("POST", "/devino/whatsapp/messages", authority, body, {
                "Content-Type": "application/json", "Authorization": f"Key {credentials['key']}"}))
        else:
            query = urlencode({"token": credentials["key"], "phone": f"9190{i:08d}", "message": text})
            built.append(_http("GET", f"/httpapi/api/sendText?{query}", authority))
    return built


async def _connection(host: str, port: int, requests: list[bytes], offset: int, stop_at: float,
                      counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while time.monotonic() < stop_at:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            counts["ok" if head.startswith(b"HTTP/1.1 200") else "other"] += 1
    finally:
        writer.close()


def _client(host: str, port: int, gateway: str, connections: int, seconds: float, cpu: int | None,
            results: multiprocessing.Queue) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    requests = build_requests(gateway, host, port)

    async def main() -> dict[str, int]:
        counts = {"ok": 0, "other": 0}
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(_connection(host, port, requests, c * 97, stop_at, counts)
                               for c in range(connections)))
        return counts

    results.put(asyncio.run(main()))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def load(sandbox: SandboxProcess, gateway: str, *, seconds: float, connections: int, clients: int,
         client_cpus: list[int | None]) -> tuple[float, int, int]:
    """(answers per second, 200 answers, other answers) over `seconds` of load from `clients` processes."""
    results: multiprocessing.Queue = multiprocessing.Queue()
    per_client = max(1, connections // clients)
    processes = [multiprocessing.Process(target=_client, args=(
        sandbox.host, sandbox.port, gateway, per_client, seconds, client_cpus[n % len(client_cpus)], results))
        for n in range(clients)]
    for process in processes:
        process.start()
    totals = {"ok": 0, "other": 0}
    for _ in processes:
        for name, value in results.get(timeout=seconds + 120).items():
            totals[name] += value
    for process in processes:
        process.join(timeout=30)
    return (totals["ok"] + totals["other"]) / seconds, totals["ok"], totals["other"]


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="load time per gateway (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per gateway (default 1)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections in all")
    parser.add_argument("--clients", type=int, default=0, help="load processes (default: one per spare CPU)")
    parser.add_argument("--only", default=",".join(GATEWAYS), help="comma-separated gateways")
    args = parser.parse_args()
    gateways = [g for g in args.only.split(",") if g]
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0]
    spare = cpus[1:] or [None]
    clients = args.clients or len(cpus[1:]) or 1
    print(f"machine: {os.cpu_count()} CPUs; load average before: {_load_average()}")
    print(f"sandbox pinned to CPU {server_cpu}; {clients} load process(es) on CPU(s) "
          f"{', '.join(str(c) for c in spare if c is not None) or 'shared'}; {args.connections} keep-alive "
          f"connections; {args.seconds:g} s per gateway after {args.warmup:g} s warm-up")
    with SandboxProcess() as sandbox:
        os.sched_setaffinity(sandbox.pid, {server_cpu})
        print(f"{'gateway':<10} {'requests/s':>11} {'200 answers':>12} {'other':>6} {'accepted':>9} "
              f"{'sandbox CPU':>12} {'per CPU-second':>15}")
        for gateway in gateways:
            load(sandbox, gateway, seconds=args.warmup, connections=args.connections, clients=clients,
                 client_cpus=spare)
            sandbox.reset()
            cpu_before = cpu_seconds(sandbox.pid)
            rate, ok, other = load(sandbox, gateway, seconds=args.seconds, connections=args.connections,
                                   clients=clients, client_cpus=spare)
            used = cpu_seconds(sandbox.pid) - cpu_before
            accepted = sandbox.account_stats(gateway)["accepted"]
            per_cpu_second = (ok + other) / used if used else float("nan")
            print(f"{gateway:<10} {rate:>11,.0f} {ok:>12,} {other:>6,} {accepted:>9,} "
                  f"{used / args.seconds:>11.0%} {per_cpu_second:>15,.0f}", flush=True)
    print("sandbox CPU: share of its core the sandbox used (near 100%: the sandbox was the limit; lower:")
    print("  the load client or other processes were). per CPU-second: requests answered per second of")
    print("  sandbox CPU, i.e. what one whole core serves.")
    print(f"load average after: {_load_average()}")


if __name__ == "__main__":
    main()
