"""Contact-list ingest: a CSV or Excel file becomes one message row per recipient, streamed in chunks.

`read_contacts` reads the file chunk by chunk (memory stays bounded whatever its size), finds the phone
column, normalises every number to E.164 (`campaigns.ingest.phones`) and marks the rows to skip, with a reason:
a missing or invalid number, a number on the opt-out list, or a number seen earlier in the file (the
first occurrence wins). The other columns are the template's variables. `load_messages` renders each
recipient's text and writes the rows in bulk (COPY on Postgres).

Row numbers are the rows as a spreadsheet shows them: the header is row 1 (when nothing is above it), the
first recipient row 2. Blank rows are counted, so numbers match the file, and are otherwise ignored.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaigns import templates
from campaigns.ingest import phones
from campaigns.ingest.seen import SeenNumbers
from campaigns.ingest.sources import (
    OVERLONG,
    ROW_NUMBER,
    ContactSource,
    IngestError,
    find_named_column,
    open_source,
)
from campaigns.ingest.timing import KEY, SEND_AT, ZONE, RowTiming
from campaigns.settings import get_settings

__all__ = ["ContactStream", "IngestError", "IngestReport", "Resume", "load_messages", "load_optouts",
           "read_contacts", "write_rejects"]

# Called after each chunk is read with the last row read, the report so far and how much of the file is read
# (0 to 1, None when the source cannot tell); returns what to run in the chunk's transaction
# (campaigns.ingest.writers.Checkpoint), or None.
OnChunk = Callable[[int, "IngestReport", float | None], Callable | None]

# A helper process (phones.AheadOfTime) costs about half a second to start: worth it from chunks this big.
HELPER_MIN_CHUNK_ROWS = 20_000

DUPLICATE = "duplicate"
OPTED_OUT = "opted out"

# Headers that name the phone column, strongest first; compared lower case without spaces or punctuation.
PHONE_HEADERS = ("phone", "msisdn", "mobile", "whatsapp", "phonenumber", "mobilenumber", "whatsappnumber",
                 "cellphone", "telephone", "tel", "cell", "mobileno", "phoneno", "telno", "cellno",
                 "number", "contact", "contactnumber", "recipient", "to")
# Words that mark a phone column inside a longer header ("Customer Phone", "WhatsApp No.").
PHONE_WORDS = ("phone", "msisdn", "mobile", "whatsapp", "telephone", "tel", "cell", "number")


def _squash(header: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", header.lower())


def find_phone_column(names: list[str], identifiers: list[str], wanted: str | None, file_name: str) -> int:
    """The phone column's position: the one named `wanted`, else the first header that names one."""
    if wanted is not None:
        return find_named_column(names, identifiers, wanted, file_name)
    squashed = [_squash(name) for name in names]
    for alias in PHONE_HEADERS:
        if alias in squashed:
            return squashed.index(alias)
    for word in PHONE_WORDS:
        for position, name in enumerate(names):
            if word in re.split(r"[^0-9a-z]+", name.lower()):
                return position
    raise IngestError(f"{file_name}: no phone column among the headers ({', '.join(names) or 'none'}); "
                      f"name one phone, msisdn or mobile, or pass --phone-column")


@dataclass
class IngestReport:
    """Counts built while streaming: rows = valid + duplicates + invalid + opted_out.

    `invalid` counts every other skipped row (missing or invalid number, a template problem);
    `reasons` counts every skipped row by its reason.
    """

    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    invalid: int = 0
    opted_out: int = 0
    reasons: Counter = field(default_factory=Counter)

    def count(self, reasons: Iterable[str | None]) -> None:
        """Add rows by skip reason (None: a valid row)."""
        for reason, number in Counter(reasons).items():
            self.rows += number
            if reason is None:
                self.valid += number
                continue
            self.reasons[reason] += number
            if reason == DUPLICATE:
                self.duplicates += number
            elif reason == OPTED_OUT:
                self.opted_out += number
            else:
                self.invalid += number

    def skip_valid(self, reasons: Iterable[str]) -> None:
        """Rows counted valid that a later step (the template) skipped after all."""
        for reason, number in Counter(reasons).items():
            self.valid -= number
            self.invalid += number
            self.reasons[reason] += number

    def as_dict(self) -> dict:
        return {"rows": self.rows, "valid": self.valid, "duplicates": self.duplicates,
                "invalid": self.invalid, "opted_out": self.opted_out,
                "reasons": dict(self.reasons.most_common())}

    @classmethod
    def from_dict(cls, data: dict) -> IngestReport:
        """The report `as_dict` gave (an interrupted ingest's, kept by its job)."""
        return cls(rows=data.get("rows", 0), valid=data.get("valid", 0), duplicates=data.get("duplicates", 0),
                   invalid=data.get("invalid", 0), opted_out=data.get("opted_out", 0),
                   reasons=Counter(data.get("reasons", {})))


@dataclass
class Resume:
    """Where an interrupted ingest goes on from: after row `after_row` (as the spreadsheet numbers it), with
    the recipients already written (`seen`: E.164 digits as ints) and the report of the rows up to there."""

    after_row: int = 0
    seen: SeenNumbers = field(default_factory=SeenNumbers)
    report: IngestReport = field(default_factory=IngestReport)


def seen_key(e164: str) -> int:
    """A recipient as the duplicate check keeps it: E.164 digits fit an int64."""
    return int(e164[1:])


class ContactStream:
    """The chunks of one contact file, and the report built while they are read.

    Each chunk is a DataFrame with `row_number`, `raw_phone`, `phone` (E.164 or None), `skip_reason`
    (None for a valid row) and one string column per variable (`variables`). With a `timing`
    (campaigns.ingest.timing) it also has `_send_at`, `_zone` and `_key`, and leaves out the rows an
    earlier firing handled, the rows not due before the next firing, and (for a relative rule) a second
    row of a phone, which the next firing takes.
    """

    def __init__(self, source: ContactSource, phone_position: int, *, region: str, opted_out: frozenset[str],
                 chunk_rows: int, timing: RowTiming | None = None, max_rows: int | None = None,
                 resume: Resume | None = None, window: tuple[frozenset[str], str] | None = None):
        self.source = source
        self.max_rows = max_rows or get_settings().max_rows_per_file
        self.cell_cap = get_settings().max_cell_chars
        self._rows_seen = 0  # non-blank data rows read so far
        self.timing = timing
        if timing is not None:
            timing.bind(source.header, source.path.name)
        self.region = region
        self.opted_out = opted_out
        # (the numbers inside the gateway's customer-service window, the reason to skip the others) for a
        # free-form campaign on a gateway that has one (campaigns.service_window); None: no such rule
        self.window = window
        self.chunk_rows = chunk_rows
        resume = resume or Resume()
        self.start_after = resume.after_row
        self.report = resume.report
        self.last_row = resume.after_row  # the last row read so far, as the spreadsheet numbers it
        identifiers = source.header.identifiers
        self.phone_column = source.header.names[phone_position]
        self._phone_identifier = identifiers[phone_position]
        self.variables = [name for name in identifiers if name != self._phone_identifier]
        self._seen = resume.seen
        self._consumed = False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self._consumed:
            raise RuntimeError("a contact stream can be read once")
        self._consumed = True
        # From the second chunk on, a helper process checks the next chunk's numbers while this process handles
        # the current chunk (phones.AheadOfTime): a big file is read on two cores.
        helper = None
        ahead: tuple[pd.DataFrame, object] | None = None
        finished = False
        try:
            for frame in self.source.chunks(self.chunk_rows):
                if ahead is None:
                    ahead = (frame, None)
                    continue
                if helper is None and self.chunk_rows >= HELPER_MIN_CHUNK_ROWS:
                    helper = phones.AheadOfTime(self.region)
                verdicts = (helper.submit(frame[self._phone_identifier].to_numpy(dtype=object))
                            if helper is not None else None)
                chunk = self._process(*ahead)
                ahead = (frame, verdicts)
                if len(chunk):
                    yield chunk
            if ahead is not None:
                chunk = self._process(*ahead)
                if len(chunk):
                    yield chunk
            finished = True
        finally:
            if helper is not None:
                helper.close(finished=finished)

    def _process(self, frame: pd.DataFrame, verdicts=None) -> pd.DataFrame:
        """One chunk read: its rows checked; `verdicts` (a future) holds its phone cells' verdicts when a
        helper checked them."""
        cells = frame.drop(columns=[ROW_NUMBER, OVERLONG])
        overlong = frame[OVERLONG].to_numpy(dtype=object)
        filled = ~pd.isna(overlong)  # a row whose long cell was blanked is not a blank row
        for column in cells.columns:
            filled |= cells[column].to_numpy(dtype=object) != ""
        self._rows_seen += int(filled.sum())
        if self._rows_seen > self.max_rows:
            raise IngestError(f"{self.source.path.name}: more than {self.max_rows:,} rows, the limit per file "
                              f"(BLAST_MAX_ROWS_PER_FILE); split it into smaller files")
        if len(frame):
            self.last_row = int(frame[ROW_NUMBER].iat[-1])
        if self.start_after:  # resumed: the rows up to here were written before
            filled &= frame[ROW_NUMBER].to_numpy() > self.start_after
        if verdicts is not None:
            e164, reasons = verdicts.result()
            if not filled.all():
                e164, reasons = e164[filled], reasons[filled]
        if not filled.all():
            frame, overlong = frame[filled], overlong[filled]
        raw = frame[self._phone_identifier].to_numpy(dtype=object)
        if verdicts is None:
            e164, reasons = phones.normalise_many(raw, self.region)
        too_long = ~pd.isna(overlong)
        if too_long.any():
            e164[too_long] = None
            reasons[too_long] = [f"cell too long ({column}: over {self.cell_cap:,} characters)"
                                 for column in overlong[too_long]]
        timing = self.timing
        if timing is not None:
            keep, send_at, zones, keys = timing.apply(frame, raw, e164, reasons)
            if not keep.all():
                frame, raw, e164, reasons = frame[keep], raw[keep], e164[keep], reasons[keep]
                send_at, zones, keys = send_at[keep], zones[keep], keys[keep]
        self._skip_opted_out_and_duplicates(e164, reasons)
        if timing is not None and timing.rule is not None:
            later = reasons == DUPLICATE
            if later.any():
                timing.deferred += int(later.sum())
                keep = ~later
                frame, raw, e164, reasons = frame[keep], raw[keep], e164[keep], reasons[keep]
                send_at, zones, keys = send_at[keep], zones[keep], keys[keep]
            timing.known_keys.update(keys)
        self.report.count(reasons)
        # Object columns keep None as None (pandas would turn a column of strings and None into NaN).
        columns = {"row_number": pd.Series(frame[ROW_NUMBER].to_numpy(dtype=np.int64)),
                   "raw_phone": pd.Series(raw, dtype=object),
                   "phone": pd.Series(e164, dtype=object),
                   "skip_reason": pd.Series(reasons, dtype=object)}
        for name in self.variables:
            columns[name] = pd.Series(frame[name].to_numpy(dtype=object), dtype=object)
        if timing is not None:
            for name, values in ((SEND_AT, send_at), (ZONE, zones), (KEY, keys)):
                columns[name] = pd.Series(values, dtype=object)
        chunk = pd.DataFrame(columns)
        return chunk

    def _skip_opted_out_and_duplicates(self, e164: np.ndarray, reasons: np.ndarray) -> None:
        candidates = np.flatnonzero(reasons == None)  # noqa: E711 (element-wise)
        if self.opted_out:
            opted = np.array([e164[i] in self.opted_out for i in candidates], dtype=bool)
            reasons[candidates[opted]] = OPTED_OUT
            candidates = candidates[~opted]
        if not len(candidates):
            return
        # seen_key inline: a call per number costs a third of a second per million rows
        keys = np.fromiter((int(number[1:]) for number in e164[candidates]), dtype=np.int64, count=len(candidates))
        first = self._seen.first_time(keys)
        reasons[candidates[~first]] = DUPLICATE
        if self.window is not None:
            inside, reason = self.window
            candidates = candidates[first]
            outside = np.array([e164[i] not in inside for i in candidates], dtype=bool)
            reasons[candidates[outside]] = reason


def read_contacts(path: str | Path, *, region: str = phones.DEFAULT_REGION, phone_column: str | None = None,
                  sheet: str | None = None, chunk_rows: int | None = None,
                  opted_out: Iterable[str] = (), max_bytes: int | None = None,
                  timing: RowTiming | None = None, max_rows: int | None = None,
                  resume: Resume | None = None, window: tuple[frozenset[str], str] | None = None) -> ContactStream:
    """Open a contact file and stream its chunks (see ContactStream); whole-file problems raise now.

    `region` is the default region for numbers written without a country code; `opted_out` holds E.164
    numbers; `chunk_rows`, `max_bytes` and `max_rows` default to the settings (BLAST_INGEST_CHUNK_ROWS,
    BLAST_MAX_UPLOAD_BYTES, BLAST_MAX_ROWS_PER_FILE). `timing` adds per-row send times and zones (see ContactStream).
    `resume` goes on after an interrupted ingest's last written row. `window`: (numbers inside the gateway's
    customer-service window, the reason to skip every other number) (campaigns.service_window).
    """
    settings = get_settings()
    region = phones.check_region(region)
    path = Path(path)
    source = open_source(path, sheet=sheet, max_bytes=max_bytes or settings.max_upload_bytes)
    try:
        position = find_phone_column(source.header.names, source.header.identifiers, phone_column, path.name)
        return ContactStream(source, position, region=region, opted_out=frozenset(opted_out),
                             chunk_rows=max(1, chunk_rows or settings.ingest_chunk_rows), timing=timing,
                             max_rows=max_rows, resume=resume, window=window)
    except IngestError:
        if hasattr(source, "workbook"):
            source.workbook.close()
        raise


def load_optouts(engine: Engine | None) -> frozenset[str]:
    """Every opted-out number (E.164). Empty when there is no database or no schema yet (a dry run)."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from campaigns.models import OptOut

    if engine is None:
        return frozenset()
    try:
        with engine.connect() as connection:
            return frozenset(connection.execute(select(OptOut.phone)).scalars())
    except (OperationalError, ProgrammingError):
        return frozenset()


def write_rejects(path: str | Path, chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Pass chunks through while writing every skipped row to a CSV: row, raw value, reason (cells a
    spreadsheet would run as formulas neutralised, as in the results export)."""
    from campaigns.export import neutralise

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row (as the spreadsheet shows it: the header is row 1)", "raw_phone", "reason"])
        for chunk in chunks:
            skipped = chunk[chunk["skip_reason"].notna()]
            writer.writerows((number, neutralise(raw), neutralise(reason)) for number, raw, reason in zip(
                skipped["row_number"], skipped["raw_phone"], skipped["skip_reason"], strict=True))
            yield chunk


def variables_json(chunk: pd.DataFrame, variables: list[str]) -> list[str]:
    """Each row's variables as a JSON object (text), exactly as orjson writes it.

    A column of plain strings (no quote, backslash or control character: nearly every cell of a contact list)
    goes into the object as it is, by one %-format per row; a column that needs escaping anywhere is written
    by orjson row by row. Three times faster than orjson alone for the usual list."""
    if not variables:
        return ["{}"] * len(chunk)
    columns = [chunk[name].to_numpy(dtype=object) for name in variables]
    if not all(_plain_strings(column) for column in columns):
        return [orjson.dumps(dict(zip(variables, values, strict=True))).decode()
                for values in zip(*columns, strict=True)]
    names = [orjson.dumps(name).decode().replace("%", "%%") for name in variables]
    row_format = "{" + ",".join(f'{name}:"%s"' for name in names) + "}"
    return [row_format % values for values in zip(*columns, strict=True)]


def _plain_strings(column: np.ndarray) -> bool:
    """Every value a str that a JSON string holds as it is: no quote, no backslash, nothing unprintable (control
    characters must be escaped; a lone surrogate is no text; the rarer spaces and marks Python calls
    unprintable merely go to orjson too)."""
    try:
        joined = "".join(column)
    except TypeError:  # a value that is not a str (None, a number)
        return False
    return joined.isprintable() and '"' not in joined and "\\" not in joined


def load_messages(engine: Engine, campaign_id: int, path: str | Path, *, region: str = phones.DEFAULT_REGION,
                  template: str, provider: str, kind: str = "text", phone_column: str | None = None,
                  sheet: str | None = None, chunk_rows: int | None = None,
                  max_bytes: int | None = None, timing: RowTiming | None = None, resume: Resume | None = None,
                  on_chunk: OnChunk | None = None,
                  window: tuple[frozenset[str], str] | None = None) -> IngestReport:
    """Read a contact file into message rows of a campaign: `pending` to send, `skipped` with a reason.

    Each valid recipient's text is rendered from `template` (and skipped when a variable is missing or
    the text is over the `provider`'s limit for `kind`). Opt-outs are read once, at the start. Each chunk
    is written in a transaction of its own (a COPY on Postgres), with what `on_chunk(last_row, report,
    fraction read)` returns for it (campaigns.ingest.writers.Checkpoint): an ingest job's progress, committed
    with its rows.
    `resume` goes on after an interrupted ingest's last written row. `timing` (campaigns.ingest.timing) gives
    rows their send time, zone and key (relative reminders, quiet hours). Returns the report (`as_dict()`
    gives the `blast import --json` shape).
    """
    from campaigns.ingest.writers import writer_for

    compiled = templates.compile_template(template)
    stream = read_contacts(path, region=region, phone_column=phone_column, sheet=sheet, chunk_rows=chunk_rows,
                           opted_out=load_optouts(engine), max_bytes=max_bytes, timing=timing, resume=resume,
                           window=window)
    with writer_for(engine, campaign_id, timed=timing is not None) as writer:
        for chunk in stream:
            bodies = np.full(len(chunk), None, dtype=object)
            valid = np.flatnonzero(chunk["skip_reason"].isna().to_numpy())
            if len(valid):
                texts, reasons = templates.render_frame(compiled, chunk.iloc[valid][stream.variables],
                                                        provider=provider, kind=kind)
                bodies[valid] = texts
                skipped = reasons != None  # noqa: E711 (element-wise)
                if skipped.any():
                    skip_reasons = chunk["skip_reason"].to_numpy(dtype=object).copy()
                    skip_reasons[valid[skipped]] = reasons[skipped]
                    chunk["skip_reason"] = skip_reasons
                    stream.report.skip_valid(reasons[skipped])
            checkpoint = (on_chunk(stream.last_row, stream.report, stream.source.fraction_read())
                          if on_chunk is not None else None)
            writer.write(chunk, bodies, variables_json(chunk, stream.variables), checkpoint)
    return stream.report

