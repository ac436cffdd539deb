"""Launches of uploads, from the compose page and the API: a small file is read within the request; for a big
one the request creates the campaign and its ingest job (campaigns.ingest.jobs) and answers at once, a worker
reads the file (task `blast.ingest`), and the launch's page follows the job from the database, so it survives
a restart of the web app, and any web process can show it."""

from __future__ import annotations

from pathlib import Path

# Uploads larger than this (bytes) are ingested by a worker; smaller ones within the request.
BACKGROUND_BYTES = 5 * 1024 * 1024


def in_background(path: Path) -> bool:
    return path.stat().st_size > BACKGROUND_BYTES


def launch_upload(upload, **launch) -> tuple[int, bool]:
    """The campaign of an upload (lifecycle.launch with `launch`'s fields); returns (its id, whether a worker
    reads the file). Read here, the upload is deleted at once; by a worker, its file once read (unless a
    reminder schedule reads it too)."""
    from campaigns import lifecycle
    from campaigns.web import uploads

    background = in_background(upload.path)
    with uploads.named(upload):
        campaign_id, _report = lifecycle.launch(
            upload.path, background=background, discard_file=background and not uploads.is_kept(upload),
            display_name=upload.original_name, **launch)
    if not background:
        uploads.discard(upload)  # its rows are the campaign's messages now (a reminder schedule's file stays)
    return campaign_id, background
