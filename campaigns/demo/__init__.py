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


# The demo's account on each gateway it can run on (`blast demo --gateway G`), and what its campaign sends.
DEMO_TEXT = "Hello {{ name }}, your appointment is on {{ appointment }}. Reply STOP to opt out."
DEMO_TEMPLATE = ("appointment_reminder", "en_US", ["Name", "Appointment"])  # metacloud: an approved template
DEMO_GATEWAYS = ("socnet", "metacloud")


def demo_account(gateway: str, sandbox) -> str:
    """The [accounts.demo] table of blast.toml for `gateway` on the running sandbox."""
    from workers.sandbox.harness import DEFAULT_CREDENTIALS

    credentials = DEFAULT_CREDENTIALS[gateway]
    lines = ["[accounts.demo]", f'provider = "{gateway}"', f'base_url = "{sandbox.base_url(gateway)}"',
             f"rate = {DEMO_RATE}"]
    if gateway == "metacloud":
        from workers.sandbox.gateways.metacloud import WABA_ID

        lines += [f'access_token = "{credentials["key"]}"', f'app_secret = "{credentials["secret"]}"',
                  f'phone_number_id = "{credentials["sender"]}"', f'waba_id = "{WABA_ID}"',
                  'verify_token = "demo-verify-token"']
    else:
        lines.append(f'api_key = "{credentials["key"]}"')
    return "\n".join(lines) + "\n"


def demo_content(gateway: str) -> tuple[str, dict | None, str]:
    """(the text to render, the campaign's options, what the banner says it sends) on `gateway`: Meta's Cloud
    API sends an approved template (a first message outside the 24-hour window may be nothing else)."""
    if gateway != "metacloud":
        return DEMO_TEXT, None, "text"
    from campaigns import approved_templates
    from campaigns.db import get_engine
    from campaigns.settings import get_account

    name, language, columns = DEMO_TEMPLATE
    text, options = approved_templates.for_launch(get_engine(), get_account("demo"), name, language, columns)
    return text, options, f"approved template {name} ({language})"


def run(*, contacts: int = 2000, console: Console | None = None, web_port: int = 8000,
        keep_web: bool = False, gateway: str = "socnet") -> dict:
    """The demo on the sandbox's `gateway` (socnet, or metacloud: a template campaign whose statuses come back as
    signed webhooks to the web app); `web_port` is where the web app listens when free (else any free port)."""
    from campaigns import lifecycle
    from campaigns.db import migrate
    from campaigns.demo.web import WebAppThread, throwaway_login
    from campaigns.errors import BlastError
    from campaigns.progress import follow
    from campaigns.settings import reset_settings
    from workers.embedded import EmbeddedWorker
    from workers.sandbox.harness import DEFAULT_CREDENTIALS, SandboxProcess

    if gateway not in DEMO_GATEWAYS:
        raise BlastError(f"--gateway {gateway!r}: the demo runs on {' or '.join(DEMO_GATEWAYS)}")
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
        credentials = DEFAULT_CREDENTIALS[gateway]
        (home / "blast.toml").write_text(demo_account(gateway, sandbox), encoding="utf-8")
        reset_settings()
        migrate()
        text, options, sends = demo_content(gateway)
        console.print(f"[bold]Blast demo[/]: {contacts} contacts -> sandbox {gateway} account at {DEMO_RATE} msg/s, "
                      f"{sends} (SQLite, filesystem broker, in-process worker)")
        with WebAppThread(port=web_port) as web:
            console.print(f"web app: {web.url} (login {user} / {password}, made for this run)", soft_wrap=True,
                          highlight=False)
            if gateway == "metacloud":  # Meta posts statuses to the app's webhook, signed with the app secret
                sandbox.knobs(gateway, webhook_url=f"{web.url}/hooks/metacloud/demo")
            with EmbeddedWorker():
                campaign_id, report = lifecycle.launch(
                    contacts_file, account_name="demo", name="Appointment reminders", template=text, options=options)
                console.print(f"ingest: {report}")
                console.print(f"campaign page: {web.url}/campaigns/{campaign_id}", soft_wrap=True, highlight=False)
                final = follow(campaign_id, console=console)
                if gateway == "metacloud":
                    final = wait_for_webhooks(campaign_id, final)
            stats = sandbox.stats(provider=gateway, key=credentials["key"])
            print_results(console, final, stats)
            if keep_web:
                console.print(f"web app still at {web.url}: Ctrl-C to stop", soft_wrap=True, highlight=False)
                with contextlib.suppress(KeyboardInterrupt):
                    web.wait()
    return final


def wait_for_webhooks(campaign_id: int, final: dict, *, timeout: float = 30.0) -> dict:
    """A campaign whose statuses come by webhook finishes once every message is taken; its read receipts come a
    moment later: the tallies once none is on its way any more (or after `timeout` seconds)."""
    import time

    from campaigns import tallies

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = final.get("counts", {})
        if not any(counts.get(state) for state in ("submitted", "sent", "delivered")):
            break
        time.sleep(0.2)
        final = tallies.campaign_report(campaign_id)
    return final


def print_results(console: Console, final: dict, stats: dict) -> None:
    """The campaign's tallies, then the sandbox's own count of what it accepted."""
    from campaigns import tallies

    tallies.print_report(console, final)
    account_stats = next(iter(stats["accounts"].values()), {})
    console.print(f"sandbox: {account_stats.get('accepted', 0)} accepted, "
                  f"{account_stats.get('duplicates', 0)} recipients twice, "
                  f"peak {account_stats.get('peak_per_second', 0)} msg/s in one second")
