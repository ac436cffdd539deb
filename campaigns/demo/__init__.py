"""`blast demo`: a whole campaign on the embedded default, against the sandbox, with no server installed.

It makes a fresh Blast home under `.blast/demo/`, generates a contact list (a few rows deliberately bad,
to show the ingest report), starts the sandbox gateways and the web app (its address and a login made for this
run are printed), launches a campaign on a sandbox account and runs it with an in-process worker, then prints
the final tallies and the sandbox's own count. The web app stops with the demo unless `keep_web` is set.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import shutil
from pathlib import Path

from rich.console import Console

DEMO_RATE = 200  # messages/s, the account's cap at the sandbox


def generate_contacts(path: Path, count: int, *, seed: int = 7) -> None:
    """Ugandan numbers in the shapes operators' spreadsheets hold, with a few invalid and duplicate rows."""
    rng = random.Random(seed)
    first = ["Amina", "Brian", "Grace", "Joseph", "Sarah", "Moses", "Ruth", "Peter", "Esther", "David"]
    shapes = ["+256 7{a}{b} {c}", "07{a}{b}{c}", "2567{a}{b}{c}", "(0)7{a}-{b}-{c}"]
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["Name", "Phone", "Appointment"])
        for i in range(count):
            a, b, c = rng.choice("0125789"), f"{i // 1000:02d}", f"{i % 1000:03d}{rng.randrange(100):02d}"
            phone = rng.choice(shapes).format(a=a, b=b, c=c)
            writer.writerow([rng.choice(first), phone, f"2026-12-{1 + i % 28:02d} 09:{i % 60:02d}"])
        writer.writerow(["Nobody", "12345", "2026-12-01 10:00"])  # invalid
        writer.writerow(["Again", phone, "2026-12-01 10:00"])  # duplicate of the last one


def run(*, contacts: int = 2000, console: Console | None = None, web_port: int = 8000,
        keep_web: bool = False) -> dict:
    """The demo; `web_port` is where the web app listens when free (else any free port)."""
    from campaigns import lifecycle
    from campaigns.db import migrate
    from campaigns.demo.web import WebAppThread, throwaway_login
    from campaigns.progress import follow
    from campaigns.settings import reset_settings
    from workers.embedded import EmbeddedWorker
    from workers.sandbox.harness import DEFAULT_CREDENTIALS, SandboxProcess

    console = console or Console()
    home = Path(".blast") / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ.update({"BLAST_HOME": str(home), "BLAST_CONFIG": str(home / "blast.toml")})
    for variable in ("BLAST_DATABASE_URL", "BLAST_BROKER_URL", "BLAST_REDIS_URL", "BLAST_FLOWER_URL"):
        os.environ.pop(variable, None)
    user, password = throwaway_login()
    reset_settings()
    contacts_file = home / "contacts.csv"
    generate_contacts(contacts_file, contacts)
    with SandboxProcess() as sandbox:
        credentials = DEFAULT_CREDENTIALS["socnet"]
        (home / "blast.toml").write_text(
            "[accounts.demo]\n"
            'provider = "socnet"\n'
            f'base_url = "{sandbox.base_url("socnet")}"\n'
            f'api_key = "{credentials["key"]}"\n'
            f"rate = {DEMO_RATE}\n",
            encoding="utf-8",
        )
        reset_settings()
        migrate()
        console.print(f"[bold]Blast demo[/]: {contacts} contacts -> sandbox Socnet account at {DEMO_RATE} msg/s "
                      f"(SQLite, filesystem broker, in-process worker)")
        with WebAppThread(port=web_port) as web:
            console.print(f"web app: {web.url} (login {user} / {password}, made for this run)", soft_wrap=True,
                          highlight=False)
            with EmbeddedWorker():
                campaign_id, report = lifecycle.launch(
                    contacts_file, account_name="demo", name="Appointment reminders",
                    template="Hello {{ name }}, your appointment is on {{ appointment }}. Reply STOP to opt out.",
                )
                console.print(f"ingest: {report}")
                console.print(f"campaign page: {web.url}/campaigns/{campaign_id}", soft_wrap=True, highlight=False)
                final = follow(campaign_id, console=console)
            stats = sandbox.stats(provider="socnet", key=credentials["key"])
            print_results(console, final, stats)
            if keep_web:
                console.print(f"web app still at {web.url}: Ctrl-C to stop", soft_wrap=True, highlight=False)
                with contextlib.suppress(KeyboardInterrupt):
                    web.wait()
    return final


def print_results(console: Console, final: dict, stats: dict) -> None:
    """The campaign's tallies, then the sandbox's own count of what it accepted."""
    from campaigns import tallies

    tallies.print_report(console, final)
    account_stats = next(iter(stats["accounts"].values()), {})
    console.print(f"sandbox: {account_stats.get('accepted', 0)} accepted, "
                  f"{account_stats.get('duplicates', 0)} recipients twice, "
                  f"peak {account_stats.get('peak_per_second', 0)} msg/s in one second")
