"""Helpers for the browser tests and docs/screenshot.py: Debian's Chromium driven by Playwright, the web app
served by uvicorn in a thread, a contact list whose phone column the detector gets wrong, and the
operator's steps done the way a person does them (labels, roles and names, never page structure)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from campaigns.demo.web import WebAppThread
from tests.support.engine import ROOT

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium reaches out to Google's services on start.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
VIEWPORT = {"width": 1200, "height": 900}  # CSS pixels
OFFICE_LANDLINE = "+256414123456"
FORMULA = "=cmd|' /C calc'!A0"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (Debian package chromium)"
    return None


def must_run_browser_tests() -> bool:
    """Under CI=true a missing Chromium fails the run instead of skipping."""
    return os.environ.get("CI", "") == "true"


def launch_chromium(playwright):
    """Headless Debian Chromium (Playwright's own browsers are never downloaded)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def new_page(browser, base_url: str):
    """A fresh context (no cookies) at the desktop width the screenshots use; downloads accepted."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(15_000)  # milliseconds
    return context.new_page()


def screenshot(page, name: str, folder: Path = ARTIFACTS) -> Path:
    """The whole page as `folder/<name>.png`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def WebServer(app) -> WebAppThread:
    """The FastAPI app on uvicorn in a daemon thread, on a free loopback port bound before the thread starts."""
    return WebAppThread(app=app, port=0)


@dataclass(frozen=True)
class OfficeList:
    """A contact list where "Office Phone" (one shared landline) is what the detector picks, while the
    WhatsApp numbers are in "Personal", a header it does not know."""

    path: Path
    rows: int
    personal: list[str]  # the valid personal numbers (E.164), in file order
    formula_row: int  # the row (the header is row 1) whose personal number is a spreadsheet formula (invalid)


def write_office_list(path: Path, count: int) -> OfficeList:
    """`count` people with valid personal mobiles, then one row whose "Personal" is a formula; every row
    shares the office landline, and the first code is a formula too."""
    personal = [f"+25677{i:07d}" for i in range(count)]
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["Name", "Office Phone", "Personal", "Code"])
        for i, number in enumerate(personal):
            writer.writerow([f"Person {i}", OFFICE_LANDLINE, number, FORMULA if i == 0 else f"C-{i:03d}"])
        writer.writerow(["Mallory", OFFICE_LANDLINE, FORMULA, "C-999"])
    return OfficeList(path=path, rows=count + 1, personal=personal, formula_row=count + 2)


# ---------------------------------------------------------------- the operator's steps


def log_in(page, user: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def upload_contacts(page, path: Path) -> None:
    """On the upload page: choose the file and send it (lands on the preview when accepted)."""
    page.get_by_label("Contact list").set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()


def preview(page, *, phone_column: str, template: str) -> None:
    """On the preview page: map the phone column, write the template, and ask for the preview again."""
    page.get_by_label("Phone column").select_option(phone_column)
    page.get_by_role("textbox", name="Template").fill(template)
    page.get_by_role("button", name="Preview").click()


def launch(page, name: str) -> None:
    """On the preview page: name the campaign and launch it now (lands on the campaign page)."""
    page.get_by_label("Campaign name").fill(name)
    page.get_by_role("button", name="Launch", exact=True).click()


def campaign_status(page):
    """The status the campaign page shows, kept live by its progress polling."""
    return page.locator("#status")


def state_count(page, state: str):
    """The count the campaign page shows for one message state."""
    return page.locator(f'[data-state="{state}"]')


def wait_until_sending(page, *, timeout_ms: float) -> None:
    """Until the page itself shows the campaign running with at least one message accepted."""
    page.wait_for_function(
        """() => document.getElementById("status").textContent.trim() === "running"
                 && Number(document.querySelector('[data-state="submitted"]').textContent) >= 1""",
        timeout=timeout_ms)
