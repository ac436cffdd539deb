"""API benchmark: a 100,000-recipient campaign created through /api/v1, as another system would; prints
figures, asserts nothing.

    python bench/api.py [--recipients 100000]

Real processes on the local Postgres (a database of its own, dropped at the end) and a Redis of its own
(bench/private_redis.py):
`blast web` and a `blast worker` on the ingest queue. The campaign is created as a draft (nothing is sent):
the figures are the POST's answer time, recipients/s until every row is in (JSON in, job done), and how
fast its messages are read back 1,000 a page; beside them, `blast launch` of the same list as a CSV file
(start=False), what an operator would do instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench import private_redis, scratch_database  # noqa: E402


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the web app exited ({process.returncode})")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    args = parser.parse_args()
    count = args.recipients
    url = scratch_database.create(prefix="blast_bench_api")
    processes: list[subprocess.Popen] = []
    redis_url = f"{private_redis.base_url()}/0"
    try:
        with tempfile.TemporaryDirectory(prefix="blast-bench-api-") as folder:
            folder_path = Path(folder)
            config = folder_path / "blast.toml"
            config.write_text('[accounts.bench]\nprovider = "socnet"\nbase_url = "http://127.0.0.1:9"\n'
                              'api_key = "bench"\nrate = 80\n', encoding="utf-8")
            env = {**os.environ, "BLAST_DATABASE_URL": url, "BLAST_BROKER_URL": redis_url,
                   "BLAST_REDIS_URL": redis_url, "BLAST_HOME": str(folder_path / "home"),
                   "BLAST_CONFIG": str(config), "BLAST_ADMIN_PASSWORD": "bench-admin-pass-1"}
            os.environ.update({key: env[key] for key in ("BLAST_DATABASE_URL", "BLAST_HOME", "BLAST_CONFIG")})
            from campaigns import apikeys, db

            db.migrate(url)
            engine = db.engine_for(url)
            key = apikeys.create(engine, "bench", "operator")
            headers = {"Authorization": f"Bearer {key}"}
            import redis

            redis.Redis.from_url(redis_url).flushdb()
            log = (folder_path / "processes.log").open("wb")
            command = [sys.executable, "-m", "campaigns.cli"]
            processes.append(subprocess.Popen([*command, "web", "--port", "8765"], env=env, cwd=ROOT, stdout=log,
                                              stderr=subprocess.STDOUT))
            processes.append(subprocess.Popen([*command, "worker", "-Q", "ingest", "-c", "2", "-l", "WARNING"],
                                              env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
            base = "http://127.0.0.1:8765/api/v1"
            _wait_for(f"{base}/openapi.json", processes[0])
            recipients = [{"phone": f"+2567{n:08d}", "variables": {"name": f"Person {n}", "day": "Monday"}}
                          for n in range(count)]
            body = {"name": "bench", "account": "bench", "template": "Hi {{ name }}, see you {{ day }}",
                    "recipients": recipients, "launch": False}
            started = time.perf_counter()
            answer = requests.post(f"{base}/campaigns", json=body, headers=headers, timeout=600)
            answered = time.perf_counter() - started
            if answer.status_code not in (201, 202):
                raise SystemExit(f"POST /campaigns answered {answer.status_code}: {answer.text[:300]}")
            campaign_id = answer.json()["id"]
            while requests.get(f"{base}/campaigns/{campaign_id}", headers=headers, timeout=30).json()["total"] < count:
                time.sleep(0.1)
            whole = time.perf_counter() - started
            print(f"POST /campaigns with {count:,} recipients: answered {answer.status_code} in {answered:.2f} s; "
                  f"every row in after {whole:.2f} s = {count / whole:,.0f} recipients/s")
            started, seen, cursor = time.perf_counter(), 0, None
            while True:
                page = requests.get(f"{base}/campaigns/{campaign_id}/messages", headers=headers, timeout=30,
                                    params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
                seen += len(page["items"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            seconds = time.perf_counter() - started
            print(f"GET its messages, 1,000 a page: {seen:,} in {seconds:.2f} s = {seen / seconds:,.0f} messages/s")
            csv_path = folder_path / "list.csv"
            with csv_path.open("w", encoding="utf-8") as stream:
                stream.write("phone,name,day\n")
                stream.writelines(f"{r['phone']},{r['variables']['name']},Monday\n" for r in recipients)
            started = time.perf_counter()
            subprocess.run([*command, "launch", str(csv_path), "--account", "bench", "--template",
                            "Hi {{ name }}, see you {{ day }}", "--at", "2099-01-01T00:00"], env=env, cwd=ROOT,
                           check=True, capture_output=True)
            seconds = time.perf_counter() - started
            print(f"instead: blast launch of the same list as a CSV: {seconds:.2f} s = {count / seconds:,.0f} "
                  f"recipients/s (process start included)")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        scratch_database.drop(url)


if __name__ == "__main__":
    main()
