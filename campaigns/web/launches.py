"""Launches of big uploads: the request creates the campaign and its ingest job (campaigns.ingest.jobs) and
answers at once; a worker reads the file (task `blast.ingest`), and the launch's page follows the job from
the database, so it survives a restart of the web app, and any web process can show it."""

from __future__ import annotations

from pathlib import Path

# Uploads larger than this (bytes) are ingested by a worker; smaller ones within the request.
BACKGROUND_BYTES = 5 * 1024 * 1024


def in_background(path: Path) -> bool:
    return path.stat().st_size > BACKGROUND_BYTES
