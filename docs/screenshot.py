"""Makes docs/campaign-page.png, the README's picture of a campaign page.

A campaign runs on the embedded default (SQLite and the filesystem broker in a temporary folder, an
in-process worker) against the sandbox gateways, and is driven in headless Chromium with the browser
tests' helpers: log in, upload, map the phone column, launch, then the campaign page is captured at
1200 CSS pixels wide, once the campaign has finished (or, with --moment running, halfway through).

Usage: python docs/screenshot.py [-o docs/campaign-page.png] [--people 300] [--rate 20] [--moment finished]
The README's picture: python docs/screenshot.py --moment running --people 600 --rate 5 (about a minute)
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from campaigns.db import migrate  # noqa: E402
from campaigns.settings import reset_settings  # noqa: E402
from tests.support import browser as ui  # noqa: E402
from tests.support.engine import write_config  # noqa: E402
from tests.support.sandbox import Sandbox  # noqa: E402

TEMPLATE = "Hello {{ name }}, your code is {{ code }}. Reply STOP to opt out."
NOT_ON_WHATSAPP = 3  # recipients the sandbox answers "not registered on WhatsApp": the failures table


def spread(numbers: list[str], count: int) -> list[str]:
    """`count` of `numbers` from their first half, evenly apart: failed before a halfway capture too."""
    step = max(1, len(numbers) // (2 * count))
    return numbers[step // 2::step][:count]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "campaign-page.png")
    parser.add_argument("--people", type=int, default=300, help="recipients with a valid number")
    parser.add_argument("--rate", type=float, default=20, help="the account's messages per second")
    parser.add_argument("--moment", choices=("finished", "running"), default="finished")
    return parser.parse_args()


def isolated_environment(folder: Path, password: str) -> None:
    """This process's Blast settings: everything under `folder`, no servers, one admin."""
    os.environ.update({"BLAST_HOME": str(folder / "home"), "BLAST_CONFIG": str(folder / "blast.toml"),
                       "BLAST_ADMIN_USER": "admin", "BLAST_ADMIN_PASSWORD": password})
    for name in ("BLAST_DATABASE_URL", "BLAST_BROKER_URL", "BLAST_REDIS_URL"):
        os.environ.pop(name, None)
    reset_settings()


def capture(args: argparse.Namespace, folder: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from campaigns.web.app import create_app
    from workers.embedded import EmbeddedWorker

    password = secrets.token_urlsafe(16)
    isolated_environment(folder, password)
    contacts = ui.write_office_list(folder / "march-reminders.csv", args.people)
    with Sandbox() as sandbox:
        write_config(folder / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": args.rate}})
        reset_settings()
        migrate()
        sandbox.knobs("socnet", not_on_whatsapp=spread(contacts.personal, NOT_ON_WHATSAPP))
        with EmbeddedWorker(concurrency=4), ui.WebServer(create_app()) as web, sync_playwright() as playwright:
            browser = ui.launch_chromium(playwright)
            page = ui.new_page(browser, web.url)
            ui.log_in(page, "admin", password)
            page.get_by_role("link", name="New campaign").click()
            ui.upload_contacts(page, contacts.path)
            ui.preview(page, phone_column="Personal", template=TEMPLATE)
            ui.launch(page, "March reminders")
            if args.moment == "running":
                half = args.people // 2
                seconds_to_half = half / args.rate
                page.wait_for_function(
                    f"""() => document.getElementById("status").textContent.trim() === "running"
                         && Number(document.querySelector('[data-state="submitted"]').textContent) >= {half}""",
                    timeout=max(120_000, 2_000 * seconds_to_half))  # milliseconds
            else:
                expect(ui.campaign_status(page)).to_have_text("finished", timeout=300_000)
            # as a returning operator opens it: from the list, without the "launched" notice
            page.get_by_role("link", name="Campaigns").click()
            page.get_by_role("link", name="March reminders").click()
            expect(ui.campaign_status(page)).to_have_text(args.moment)
            page.wait_for_function("() => document.querySelectorAll('#chart rect').length > 0")  # drawn by the poll
            args.output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.output), full_page=True)
            browser.close()


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="blast-screenshot-") as folder:
        capture(args, Path(folder))
    print(args.output)


if __name__ == "__main__":
    main()
