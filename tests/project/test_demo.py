"""`blast demo`: a whole campaign on the embedded default, with the web app serving it while it runs."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.support.waiting import wait_until
from tests.support.web import csrf_of
from workers.sandbox.harness import free_port

CONTACTS = 2000  # at the demo's 200 msg/s: about 10 s of sending, long enough to watch it run
WEB_LINE = re.compile(r"web app: (http://127\.0\.0\.1:\d+) \(login (\S+) / (\S+), made for this run\)")
CAMPAIGN_LINE = re.compile(r"campaign page: (http://127\.0\.0\.1:\d+/campaigns/\d+)")


class DemoProcess:
    """`blast demo` in a folder of its own; its output read line by line as it comes."""

    def __init__(self, folder: Path, *args: str):
        env = {key: value for key, value in os.environ.items() if not key.startswith("BLAST_")}
        env.update(PYTHONUNBUFFERED="1", COLUMNS="200")
        self.process = subprocess.Popen([sys.executable, "-m", "campaigns.cli", "demo", *args], cwd=folder,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern, timeout: float = 60) -> re.Match:
        def seen():
            while not self.lines.empty():
                self.output.append(self.lines.get())
                if match := pattern.search(self.output[-1]):
                    return match
            if self.process.poll() is not None and self.lines.empty():
                raise AssertionError("the demo ended early:\n" + "".join(self.output))
            return None

        return wait_until(seen, timeout=timeout, message=f"the demo to print {pattern.pattern!r}")

    def finish(self, timeout: float = 120) -> str:
        self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_demo_serves_the_campaign_page_while_it_runs(tmp_path):
    # given the demo started with the web app on a free port
    demo = DemoProcess(tmp_path, "--contacts", str(CONTACTS), "--web-port", str(free_port()))
    try:
        web, user, password = demo.wait_for(WEB_LINE).groups()
        campaign_url = demo.wait_for(CAMPAIGN_LINE).group(1)
        # when the operator logs in at the printed address with the printed login
        operator = requests.Session()
        token = csrf_of(operator.get(f"{web}/login", timeout=10).text)
        home = operator.post(f"{web}/login", data={"username": user, "password": password, "csrf_token": token},
                             timeout=10)
        assert home.status_code == 200, home.text
        # then the campaign page and its live progress are served while the campaign is still sending
        page = operator.get(campaign_url, timeout=10)
        progress = operator.get(f"{campaign_url}/progress.json", timeout=10).json()
        assert page.status_code == 200 and "Appointment reminders" in page.text
        assert progress["status"] == "running" and progress["total"] == CONTACTS + 2
        # and the demo still ends by itself, with its tallies and the sandbox's count, and the web app stopped
        output = demo.finish()
        assert demo.process.returncode == 0, output
        assert f"submitted │ {CONTACTS}" in output
        assert f"sandbox: {CONTACTS} accepted, 0 recipients twice" in output
        assert not listening(web)
    finally:
        demo.stop()


@pytest.mark.slow
def test_each_demo_run_makes_its_own_login(tmp_path):
    # given two demo runs, each stopped once it has printed its login (the run itself is the test above)
    logins = []
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        demo = DemoProcess(tmp_path / run, "--contacts", "20", "--web-port", str(free_port()))
        try:
            logins.append(demo.wait_for(WEB_LINE).group(3))
        finally:
            demo.stop()
    # then each printed a different throwaway password, none of them empty
    assert all(len(password) >= 12 for password in logins) and logins[0] != logins[1]


@pytest.mark.slow
def test_the_metacloud_demo_sends_an_approved_template_read_through_signed_webhooks(tmp_path):
    # given the demo on Meta's Cloud API (the sandbox's), with a small list
    demo = DemoProcess(tmp_path, "--gateway", "metacloud", "--contacts", "200", "--web-port", str(free_port()))
    try:
        # when it runs to its end
        demo.wait_for(WEB_LINE)
        output = demo.finish()
        # then it sent the approved template to every valid contact, and their read receipts came back to the
        # web app as signed webhooks
        assert demo.process.returncode == 0, output
        assert "approved template appointment_reminder (en_US)" in output
        assert re.search(r"read\s+│ 200\s", output), output
        assert "sandbox: 200 accepted, 0 recipients twice" in output
    finally:
        demo.stop()
