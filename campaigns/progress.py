"""`--wait`: a rich progress bar over a campaign's tallies until it ends or pauses."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from campaigns import tallies
from campaigns.states import ACCEPTED_STATES, MessageState

POLL_SECONDS = 0.5
DONE_STATES = [s.value for s in (*ACCEPTED_STATES, MessageState.FAILED, MessageState.SKIPPED,
                                  MessageState.CANCELLED)]
COUNTED = ("submitted", "sent", "delivered", "read", "failed", "pending", "queued", "sending", "unknown", "skipped")


def done(report: dict) -> int:
    return sum(report["counts"][state] for state in DONE_STATES)


def follow(campaign_id: int, *, console, until=("finished", "cancelled", "paused")) -> dict:
    """Poll the tallies every half second; return the last report when the status is one of `until`."""
    report = tallies.campaign_report(campaign_id)
    columns = [TextColumn("[bold]{task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>7.1f} msg/s"), TimeRemainingColumn(),
               TextColumn("{task.fields[counts]}")]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("send", total=report["total"], name=report["name"], rate=0.0, counts="")
        window: list[tuple[float, int]] = []
        while True:
            report = tallies.campaign_report(campaign_id)
            now, sent = time.monotonic(), done(report)
            window = [(t, n) for t, n in window if now - t <= 5.0] + [(now, sent)]
            rate = (window[-1][1] - window[0][1]) / max(1e-9, window[-1][0] - window[0][0]) if len(window) > 1 else 0
            counts = " ".join(f"{s}={report['counts'][s]}" for s in COUNTED if report["counts"][s])
            progress.update(task, completed=sent, total=report["total"], rate=rate, counts=counts)
            if report["status"] in until:
                break
            time.sleep(POLL_SECONDS)
    return report
