"""Uploaded contact files: streamed to disk under BLAST_HOME/uploads/<token>/, then previewed and checked.

A token is a random name, so one upload cannot be guessed from another. The stored file is always
`contacts<suffix>`: the operator's file name is kept only as text to show, and names the file in every
error. A file that cannot be read (damaged, encrypted, over a limit: campaigns.ingest.sources) is refused on
the upload page and deleted at once.

Uploads are deleted when their campaign is launched (`discard`, from the launch), when the operator
discards them, and once older than BLAST_UPLOAD_MAX_AGE_HOURS (`sweep`: when the web app starts and, while
it runs, at most every SWEEP_EVERY_SECONDS on an upload or preview). An upload a reminder schedule reads
from is kept as long as a schedule names it: the schedule reads it again at each firing.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from campaigns import gateway_limits, templates
from campaigns.db import get_engine
from campaigns.ingest import find_phone_column, load_optouts, read_contacts, write_rejects
from campaigns.ingest.sources import CSV_SUFFIXES, EXCEL_SUFFIXES, IngestError, open_source
from campaigns.settings import get_settings

ALLOWED_SUFFIXES = frozenset(CSV_SUFFIXES | EXCEL_SUFFIXES)
READ_BLOCK_BYTES = 1024 * 1024
PREVIEW_ROWS = 10
PREVIEW_RECIPIENTS = 3
SWEEP_EVERY_SECONDS = 3600.0
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
log = logging.getLogger("blast.uploads")
_sweep_lock = threading.Lock()
_last_sweep: float | None = None  # time.monotonic() of the last sweep in this process


class UploadRejected(Exception):
    """The upload is refused: wrong type, too large, empty, or unknown. The message is for the operator."""

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


# The upload page's verdict counts read at most this many rows inside its request (in chunks of the second);
# a launch reads the whole file, in the background when it is big (launches.BACKGROUND_BYTES).
PREVIEW_CHECK_ROWS = 50_000
SHOWN_REJECTS = 20  # the first skipped rows the preview lists (all of them are in the rejects file)
PREVIEW_CHUNK_ROWS = 10_000


def uploads_folder() -> Path:
    return Path(get_settings().home) / "uploads"


async def save_upload(upload) -> str:
    """Stream a Starlette UploadFile to disk in 1 MB blocks; refuse other types, files over
    Settings.max_upload_bytes and files that cannot be opened and read to their first row (deleted at once:
    the UploadRejected names the operator's file). Returns the upload's token."""
    original = Path(upload.filename or "").name
    suffix = Path(original).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise UploadRejected(f"{original or 'the file'}: unsupported type (use .csv or .xlsx)", 415)
    limit = get_settings().max_upload_bytes
    token = secrets.token_hex(16)
    folder = uploads_folder() / token
    folder.mkdir(parents=True)
    size = 0
    with open(folder / f"contacts{suffix}", "wb") as handle:
        while block := await upload.read(READ_BLOCK_BYTES):
            size += len(block)
            if size > limit:
                break
            handle.write(block)
    if size > limit or size == 0:
        shutil.rmtree(folder)
        if size == 0:
            raise UploadRejected(f"{original}: the file is empty")
        raise UploadRejected(f"{original}: over the upload limit of {limit / 1e6:.1f} MB", 413)
    (folder / "name.txt").write_text(original, encoding="utf-8")
    stored = Upload(token=token, path=folder / f"contacts{suffix}", original_name=original)
    try:
        await run_in_threadpool(first_rows, stored, 1)  # the file opens, its header and first row read
    except IngestError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise UploadRejected(str(error)) from None
    await run_in_threadpool(maybe_sweep)
    return token


@dataclass(frozen=True)
class Upload:
    token: str
    path: Path
    original_name: str

    @property
    def rejects_path(self) -> Path:
        return self.path.parent / "rejects.csv"


def find_upload(token: str) -> Upload:
    maybe_sweep()
    folder = uploads_folder() / token
    files = sorted(folder.glob("contacts.*")) if _TOKEN.match(token) and folder.is_dir() else []
    if not files:
        raise UploadRejected("no such upload", 404)
    return Upload(token=token, path=files[0], original_name=(folder / "name.txt").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class FirstRows:
    headers: list[str]  # as written in the file
    rows: list[list[str]]  # the first data rows, cells as text
    detected_phone: str | None  # the header ingest takes as the phone column when none is chosen


def first_rows(upload: Upload, n: int = PREVIEW_ROWS) -> FirstRows:
    """The header, the first `n` rows and the detected phone column (an IngestError if unreadable)."""
    with named(upload):
        source = open_source(upload.path, max_bytes=get_settings().max_upload_bytes)
        try:
            names, identifiers = source.header.names, source.header.identifiers
            try:
                detected = names[find_phone_column(names, identifiers, None, upload.original_name)]
            except IngestError:
                detected = None
            frame = next(iter(source.chunks(n)), None)
            rows = [] if frame is None else frame[identifiers].head(n).astype(str).values.tolist()
        finally:
            if hasattr(source, "workbook"):
                source.workbook.close()
    return FirstRows(headers=names, rows=rows, detected_phone=detected)


@contextmanager
def named(upload: Upload) -> Iterator[None]:
    """IngestErrors raised inside name the operator's file, not the stored `contacts<suffix>`."""
    try:
        yield
    except IngestError as error:
        message = str(error)
        stored = f"{upload.path.name}: "
        if message.startswith(stored):
            message = f"{upload.original_name}: {message[len(stored):]}"
        raise IngestError(message) from None


def dry_run(upload: Upload, *, region: str, phone_column: str | None) -> dict:
    """The ingest report (`blast import --json` shape, plus phone_column, variables and `partial`) and the
    rejects file, without writing any message. It runs inside the page's request, so it reads at most about
    PREVIEW_CHECK_ROWS rows (`partial`: the file goes on); the launch checks the whole file."""
    partial = False
    first_rejects: list[dict] = []
    with named(upload):
        stream = read_contacts(upload.path, region=region, phone_column=phone_column,
                               opted_out=load_optouts(get_engine()), chunk_rows=PREVIEW_CHUNK_ROWS)
        with closing(write_rejects(upload.rejects_path, stream)) as chunks:
            for chunk in chunks:
                if len(first_rejects) < SHOWN_REJECTS:
                    skipped = chunk[chunk["skip_reason"].notna()].head(SHOWN_REJECTS - len(first_rejects))
                    first_rejects += [{"row": int(row), "cell": cell, "reason": reason} for row, cell, reason
                                      in zip(skipped["row_number"], skipped["raw_phone"], skipped["skip_reason"],
                                             strict=True)]
                if stream.report.rows >= PREVIEW_CHECK_ROWS:
                    partial = True
                    break
    report = stream.report.as_dict()
    report["phone_column"] = stream.phone_column
    report["variables"] = stream.variables
    report["partial"] = partial
    report["first_rejects"] = first_rejects
    return report


def render_preview(upload: Upload, *, template: str, provider: str, region: str, phone_column: str | None,
                   kind: str = "text", n: int = PREVIEW_RECIPIENTS) -> list[dict]:
    """The first `n` valid recipients' texts (or why each would be skipped), with the gateway's length
    check: phone, text, skip_reason, length, limit, unit. A template that does not parse raises
    `templates.TemplateProblem`."""
    compiled = templates.compile_template(template)
    with named(upload):
        return _preview(upload, compiled, provider=provider, region=region, phone_column=phone_column, kind=kind,
                        n=n)


def _preview(upload: Upload, compiled, *, provider: str, region: str, phone_column: str | None, kind: str,
             n: int) -> list[dict]:
    stream = read_contacts(upload.path, region=region, phone_column=phone_column, chunk_rows=200)
    limit, unit = gateway_limits.text_limit(provider, kind)
    found: list[dict] = []
    for chunk in stream:
        valid = chunk[chunk["skip_reason"].isna()]
        for record in valid.head(n - len(found)).to_dict("records"):
            text, reason = templates.render_one(compiled, {name: record[name] for name in stream.variables})
            if text is not None:
                reason = reason or gateway_limits.too_long(text, provider, kind)
            length = gateway_limits.measure(text, unit) if text is not None else 0
            found.append({"phone": record["phone"], "text": text, "skip_reason": reason, "length": length,
                          "limit": limit, "unit": unit})
        if len(found) >= n:
            break
    return found


def _kept_folders() -> set[Path]:
    """The upload folders a reminder schedule reads its contact file from (it reads it at every firing), or
    an ingest job not done yet reads from (a worker goes on reading it)."""
    from sqlalchemy import select

    from campaigns.models import IngestJob, Schedule
    from campaigns.states import IngestStatus

    with get_engine().connect() as connection:
        files = connection.execute(select(Schedule.source_file)).scalars().all()
        files += connection.execute(select(IngestJob.source_file).where(IngestJob.status.in_(
            (IngestStatus.QUEUED, IngestStatus.RUNNING, IngestStatus.FAILED)))).scalars().all()
    return {Path(file).resolve().parent for file in files}


def is_kept(upload: Upload) -> bool:
    """A reminder schedule (or an unfinished ingest) reads this upload's file."""
    return upload.path.parent.resolve() in _kept_folders()


def discard(upload: Upload) -> bool:
    """Delete an upload (its file and rejects) unless a reminder schedule reads from it; True if deleted."""
    folder = upload.path.parent
    if folder.resolve() in _kept_folders():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def _made_at(folder: Path) -> float:
    marker = folder / "name.txt"  # written once, at upload: the rejects file and previews do not touch it
    return (marker if marker.exists() else folder).stat().st_mtime


def sweep(now: float | None = None) -> list[str]:
    """Delete every upload made more than BLAST_UPLOAD_MAX_AGE_HOURS ago that no reminder schedule reads
    from; returns their tokens. Nothing is deleted when the database cannot say which are scheduled."""
    global _last_sweep
    folder = uploads_folder()
    cutoff = (time.time() if now is None else now) - get_settings().upload_max_age_hours * 3600
    with _sweep_lock:
        _last_sweep = time.monotonic()
        if not folder.is_dir():
            return []
        old = [entry for entry in folder.iterdir()
               if _TOKEN.match(entry.name) and entry.is_dir() and _made_at(entry) < cutoff]
        if not old:
            return []
        try:
            kept = _kept_folders()
        except Exception as error:  # the database is down: keep everything until the next sweep
            log.warning("uploads not swept: the schedules could not be read (%s)", type(error).__name__)
            return []
        deleted = []
        for entry in old:
            if entry.resolve() not in kept:
                shutil.rmtree(entry, ignore_errors=True)
                deleted.append(entry.name)
    if deleted:
        log.info("deleted %d uploads older than %s hours", len(deleted), get_settings().upload_max_age_hours)
    return deleted


def maybe_sweep() -> None:
    """A sweep, when none ran in this process for SWEEP_EVERY_SECONDS (or ever); never raises."""
    if _last_sweep is not None and time.monotonic() - _last_sweep < SWEEP_EVERY_SECONDS:
        return
    try:
        sweep()
    except OSError as error:
        log.warning("uploads not swept: %s", error)
