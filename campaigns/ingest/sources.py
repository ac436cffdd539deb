"""Reading contact files: CSV (delimiter and encoding detected) and Excel .xlsx, in bounded chunks.

Every cell is read as text, so numbers are never turned into floats on the way in. A source yields
pandas DataFrames whose columns are the header's identifiers and whose `row_number` column is the row as a
spreadsheet shows it (the header's row is row 1 when nothing is above it; blank rows are counted, then
dropped), and whose
`_overlong` column names the first cell of the row over BLAST_MAX_CELL_CHARS (None when none is; that
cell is blanked, and the row becomes a reject).

Memory stays bounded whatever a file holds: a workbook's zip directory is checked before anything is
unpacked (each part's unpacked size and compression ratio, the shared strings, encryption), its big XML
parts are scanned for a text longer than any cell may be (whitespace or a huge string), and openpyxl reads
the sheet streaming, in chunks bounded in rows and in characters. Every problem is an IngestError: one
line naming the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import keyword
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from campaigns.errors import BlastError
from campaigns.settings import get_settings

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
ROW_NUMBER = "row_number"
OVERLONG = "_overlong"  # the header of the row's first cell over the cap (identifiers_for never makes it)
# Columns every chunk carries besides the file's own; a header with one of these names is renamed.
RESERVED = ("row_number", "raw_phone", "phone", "skip_reason")
# Words Jinja2 reads as operators or constants: not usable as variable names.
_JINJA_WORDS = {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "loop", "self"}
_BYTES_UNDEFINED_IN_CP1252 = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
MiB = 1024 * 1024
OTHER_PART_BYTES = 16 * MiB  # a workbook's XML parts besides sheets and shared strings (styles, workbook)
RATIO_FROM_BYTES = MiB  # parts smaller than this unpacked are not held to the compression ratio
CHUNK_TEXT_CHARS = 32 * MiB  # a chunk of workbook rows ends at this many characters (shared strings repeat)
SCAN_BLOCK = MiB


class IngestError(BlastError):
    """A whole contact file is unusable: empty, unreadable, unsupported, too large, or no phone column."""


@dataclass(frozen=True)
class Header:
    names: list[str]  # as written in the file
    identifiers: list[str]  # as templates see them


def identifiers_for(headers: list[str]) -> list[str]:
    """Template names for headers: ASCII, lower case, `_` for anything else, unique, never reserved.

    `Full Name` -> `full_name`, `Prénom` -> `prenom`, `2nd phone` -> `_2nd_phone`, an empty header ->
    `column_3` (by position), a second `name` -> `name_2`.
    """
    taken = set(RESERVED)
    found = []
    for position, header in enumerate(headers, start=1):
        ascii_text = unicodedata.normalize("NFKD", str(header)).encode("ascii", "ignore").decode()
        name = re.sub(r"[^0-9a-z]+", "_", ascii_text.lower()).strip("_") or f"column_{position}"
        if name[0].isdigit():
            name = "_" + name
        if name in _JINJA_WORDS or keyword.iskeyword(name):
            name += "_"
        unique, suffix = name, 2
        while unique in taken:
            unique, suffix = f"{name}_{suffix}", suffix + 1
        taken.add(unique)
        found.append(unique)
    return found


def _squash(header: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", header.lower())


def find_named_column(names: list[str], identifiers: list[str], wanted: str, file_name: str) -> int:
    """The position of the column the user named: exactly, then ignoring case, then ignoring spaces and
    punctuation, then by its template identifier; an IngestError listing the headers otherwise."""
    tests = (
        lambda name, _identifier: name == wanted,
        lambda name, _identifier: name.strip().lower() == wanted.strip().lower(),
        lambda name, _identifier: bool(_squash(wanted)) and _squash(name) == _squash(wanted),
        lambda _name, identifier: identifier == wanted,
    )
    for test in tests:
        for position, (name, identifier) in enumerate(zip(names, identifiers, strict=True)):
            if test(name, identifier):
                return position
    raise IngestError(f"{file_name}: no column {wanted!r} (headers: {', '.join(names)})")


def _cell_text(value: object) -> str:
    """An Excel cell as the text a person sees (whole-number floats without `.0`)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Excel keeps every number as a float: a phone typed as a number comes back as 256701234567.0.
        if value.is_integer() and abs(value) < 1e18:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


class ContactSource:
    """A contact file, opened far enough to know its format and header."""

    kind: str
    header: Header
    path: Path

    def chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def fraction_read(self) -> float | None:
        """How much of the file has been read so far (0 to 1), when the source can tell."""
        return None


def _detect_encoding(path: Path, head: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252, else latin-1 (which reads anything)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                break
        else:
            try:
                decoder.decode(b"", final=True)
                return "utf-8"
            except UnicodeDecodeError:
                pass
        handle.seek(0)
        while block := handle.read(1 << 20):
            if any(byte in block for byte in _BYTES_UNDEFINED_IN_CP1252):
                return "latin-1"
    return "cp1252"


def _choose_delimiter(sample: str) -> str:
    """The candidate that splits the header into the most fields, consistently over the sample."""
    lines = sample.splitlines()[:50]
    if len(lines) > 1:
        lines = lines[:-1]  # the sample may have cut the last line short
    best, best_score = ",", (0.0, 1)
    for delimiter in DELIMITERS:
        try:
            records = [record for record in csv.reader(lines, delimiter=delimiter) if record]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        consistent = sum(1 for record in records if len(record) == width) / len(records)
        score = (consistent, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from it (how far a CSV's reading has come)."""

    def __init__(self, raw):
        self.raw = raw
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.raw.readinto(buffer)
        self.consumed += count or 0
        return count

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.consumed += len(data)
        return data

    def close(self) -> None:
        self.raw.close()
        super().close()


class CsvSource(ContactSource):
    kind = "csv"

    def __init__(self, path: Path, head: bytes):
        self.path = path
        self.encoding = _detect_encoding(path, head)
        try:
            with open(path, encoding=self.encoding, newline="") as handle:
                sample = handle.read(SAMPLE_BYTES)
        except UnicodeDecodeError as error:
            raise IngestError(f"{path.name}: not readable as {error.encoding} text (bad bytes at {error.start}); "
                              f"save it as UTF-8 CSV") from None
        if not sample.strip():
            raise IngestError(f"{path.name}: the file is empty")
        self.delimiter = _choose_delimiter(sample)
        reader = csv.reader(io.StringIO(sample), delimiter=self.delimiter)
        names: list[str] = []
        try:
            for record in reader:
                if any(cell.strip() for cell in record):
                    names = [cell.strip() for cell in record]
                    break
        except csv.Error as error:
            raise IngestError(f"{path.name}: not a readable CSV file ({error})") from None
        if not names:
            raise IngestError(f"{path.name}: the file is empty")
        _check_header(path.name, names)
        self.skip_lines = reader.line_num  # physical lines up to and including the header
        self.header = Header(names, identifiers_for(names))

    def describe(self) -> str:
        shown = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}[self.delimiter]
        return f"CSV, {self.encoding}, {shown}-separated"

    def fraction_read(self) -> float | None:
        size = self.path.stat().st_size
        return min(1.0, self._counter.consumed / size) if size and self._counter is not None else None

    _counter = None

    def chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        width = len(self.header.identifiers)
        self._counter = _CountingReader(open(self.path, "rb"))  # noqa: SIM115 (closed with the reader below)
        try:
            reader = pd.read_csv(
                self._counter, sep=self.delimiter, header=None, skiprows=self.skip_lines,
                names=self.header.identifiers, usecols=range(width), dtype=str, keep_default_na=False,
                na_filter=False, skip_blank_lines=False, encoding=self.encoding, chunksize=chunk_rows,
                engine="c", index_col=False,
            )
            with reader:
                for frame in reader:
                    frame = frame.fillna("")
                    frame.insert(0, ROW_NUMBER, frame.index.to_numpy() + self.skip_lines + 1)
                    frame[OVERLONG] = pd.Series(self._blank_overlong(frame), index=frame.index, dtype=object)
                    yield frame
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
            detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise IngestError(f"{self.path.name}: not a readable CSV file ({detail})") from None
        finally:
            self._counter.close()

    def _blank_overlong(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's first header whose cell is over the cap (None if none); those cells blanked in place."""
        cap = get_settings().max_cell_chars
        found = np.full(len(frame), None, dtype=object)
        for name, identifier in zip(self.header.names, self.header.identifiers, strict=True):
            cells = frame[identifier].to_numpy(dtype=object)
            over = np.fromiter(map(len, cells), dtype=np.int64, count=len(cells)) > cap
            if over.any():
                found[over & pd.isna(found)] = name
                cells = cells.copy()
                cells[over] = ""
                frame[identifier] = cells
        return found


class ExcelSource(ContactSource):
    kind = "xlsx"

    def __init__(self, path: Path, sheet: str | None):
        from openpyxl import load_workbook

        self.path = path
        check_workbook(path)
        try:
            # read_only streams the sheet's XML: memory stays bounded whatever the sheet's size.
            self.workbook = load_workbook(path, read_only=True, data_only=True)
        except Exception as error:  # openpyxl raises many kinds for a damaged or foreign zip
            raise IngestError(f"{path.name}: not a readable Excel workbook (damaged: {_detail(error)})") from None
        try:
            if not self.workbook.sheetnames:
                raise IngestError(f"{path.name}: the workbook has no sheet")
            if sheet is None:
                self.sheet = self.workbook.worksheets[0]
            elif sheet in self.workbook.sheetnames:
                self.sheet = self.workbook[sheet]
            else:
                raise IngestError(f"{path.name}: no sheet named {sheet!r} "
                                  f"(sheets: {', '.join(self.workbook.sheetnames)})")
            # The size the writer recorded: only an estimate (some record a wrong one), for progress bars.
            self.declared_rows = self.sheet.max_row if isinstance(self.sheet.max_row, int) else None
            self.sheet.reset_dimensions()  # some writers record a wrong size; read what is there
            self.rows = self.sheet.iter_rows(values_only=True)
            names: list[str] = []
            self.header_row = 0  # the header's row in the sheet (1-based), as a spreadsheet shows it
            with self._damage_is_an_ingest_error():
                for values in self.rows:
                    self.header_row += 1
                    cells = [_cell_text(value).strip() for value in values]
                    if any(cells):
                        while cells and not cells[-1]:
                            cells.pop()
                        names = cells
                        break
            if not names:
                raise IngestError(f"{path.name}: the sheet {self.sheet.title!r} is empty")
            _check_header(path.name, names)
            self.header = Header(names, identifiers_for(names))
        except BaseException:
            self.workbook.close()
            raise

    def describe(self) -> str:
        return f"Excel workbook, sheet {self.sheet.title!r}"

    _rows_read = 0

    def fraction_read(self) -> float | None:
        if not self.declared_rows or self.declared_rows < 2:
            return None
        return min(0.99, self._rows_read / self.declared_rows)

    @contextmanager
    def _damage_is_an_ingest_error(self, row: int | None = None):
        """openpyxl, ElementTree and zipfile raise many kinds for a damaged sheet: one line for each."""
        try:
            yield
        except IngestError:
            raise
        except Exception as error:
            where = f" near row {row}" if row is not None else ""
            raise IngestError(f"{self.path.name}: not a readable Excel workbook (damaged{where}: "
                              f"{_detail(error)})") from None

    def chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        width = len(self.header.identifiers)
        names = self.header.names
        cap = get_settings().max_cell_chars
        blank = [""] * width
        numbers: list[int] = []
        records: list[list[str]] = []
        overlong: list[str | None] = []
        number, chars = self.header_row, 0
        try:
            rows = iter(self.rows)
            while True:
                with self._damage_is_an_ingest_error(number + 1):
                    values = next(rows, None)
                if values is None:
                    break
                number += 1
                cells = [_cell_text(value) for value in values[:width]]
                if len(cells) < width:
                    cells += blank[len(cells):]
                size = sum(map(len, cells))
                first_over = None
                if size > cap and max(map(len, cells)) > cap:
                    first_over = next(names[i] for i, cell in enumerate(cells) if len(cell) > cap)
                    cells = ["" if len(cell) > cap else cell for cell in cells]
                    size = sum(map(len, cells))
                numbers.append(number)
                records.append(cells)
                overlong.append(first_over)
                chars += size
                # Shared strings let a small sheet repeat a long text on every row: chunks end at a size too.
                if len(records) >= chunk_rows or chars >= CHUNK_TEXT_CHARS:
                    self._rows_read = number
                    yield self._frame(numbers, records, overlong)
                    numbers, records, overlong, chars = [], [], [], 0
            if records:
                yield self._frame(numbers, records, overlong)
        finally:
            self.workbook.close()

    def _frame(self, numbers: list[int], records: list[list[str]], overlong: list[str | None]) -> pd.DataFrame:
        frame = pd.DataFrame(records, columns=self.header.identifiers, dtype=str)
        frame.insert(0, ROW_NUMBER, numbers)
        frame[OVERLONG] = pd.Series(overlong, dtype=object)
        return frame


def _detail(error: BaseException) -> str:
    """An exception as one short line: its kind and the first line of its text."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def _check_header(file_name: str, names: list[str]) -> None:
    cap = get_settings().max_cell_chars
    for position, name in enumerate(names, start=1):
        if len(name) > cap:
            raise IngestError(f"{file_name}: header {position} is {len(name):,} characters long, over the limit of "
                              f"{cap:,} (BLAST_MAX_CELL_CHARS): is the first row a header?")


def _mb(size: float) -> str:
    return f"{size / MiB:,.1f} MiB"


def check_workbook(path: Path) -> None:
    """Refuse a workbook before openpyxl unpacks anything that could take memory without bound (see
    _check_workbook). A file that passed is not checked again in this process while it and the limits stay
    the same: the web app opens an upload several times (its preview, dry run and launch)."""
    settings = get_settings()
    stat = path.stat()
    limits = (settings.max_cell_chars, settings.max_unpacked_bytes, settings.max_shared_strings_bytes,
              settings.max_compression_ratio)
    _checked(str(path.resolve()), stat.st_size, stat.st_mtime_ns, limits)


@lru_cache(maxsize=64)  # only a check that passed is remembered: a refusal raises, so is not cached
def _checked(path: str, _size: int, _mtime_ns: int, _limits: tuple) -> bool:
    _check_workbook(Path(path))
    return True


def _check_workbook(path: Path) -> None:
    """Refuse a workbook before openpyxl unpacks anything that could take memory without bound.

    From the zip directory: encryption; each part's unpacked size (all parts together, the shared strings
    which openpyxl keeps in memory, every other XML part it parses whole) and compression ratio. Then every
    part is unpacked once, as a stream: a damaged part fails its CRC here, and a big XML part is searched for a
    text (whitespace, a string) longer than any cell may be, which an XML parser would hold whole. zipfile
    never unpacks more than a part's declared size, so the declared sizes bound what openpyxl can be given.
    """
    settings = get_settings()
    name = path.name
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise IngestError(f"{name}: not a readable Excel workbook (damaged zip: {_detail(error)})") from None
    with archive:
        members = archive.infolist()
        names = {member.filename for member in members}
        if "[Content_Types].xml" not in names or not any(part.startswith("xl/") for part in names):
            raise IngestError(f"{name}: not an Excel workbook (a zip archive of something else)")
        if any(member.flag_bits & 0x1 for member in members):
            raise IngestError(f"{name}: the workbook is encrypted; remove its password and upload it again")
        longest_text = max(MiB, 8 * settings.max_cell_chars)  # bytes: UTF-8 and entities take up to 8 a character
        for member in members:
            part = member.filename
            base = part.rsplit("/", 1)[-1].lower()
            is_xml = base.endswith((".xml", ".rels"))
            if base == "sharedstrings.xml" and member.file_size > settings.max_shared_strings_bytes:
                raise IngestError(f"{name}: its shared strings unpack to {_mb(member.file_size)}, over the limit "
                                  f"of {_mb(settings.max_shared_strings_bytes)} (BLAST_MAX_SHARED_STRINGS_BYTES)")
            if (is_xml and base != "sharedstrings.xml" and not part.startswith("xl/worksheets/")
                    and member.file_size > OTHER_PART_BYTES):
                raise IngestError(f"{name}: its part {part} unpacks to {_mb(member.file_size)}, over the limit "
                                  f"of {_mb(OTHER_PART_BYTES)}")
        total = sum(member.file_size for member in members)
        if total > settings.max_unpacked_bytes:
            raise IngestError(f"{name}: unpacks to {_mb(total)}, over the limit of "
                              f"{_mb(settings.max_unpacked_bytes)} (BLAST_MAX_UNPACKED_BYTES)")
        for member in members:
            part = member.filename
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > RATIO_FROM_BYTES and ratio > settings.max_compression_ratio:
                raise IngestError(f"{name}: its part {part} is packed {ratio:,.0f} to 1, over the limit of "
                                  f"{settings.max_compression_ratio:,.0f} (BLAST_MAX_COMPRESSION_RATIO): "
                                  f"a zip bomb, or a damaged file")
        for member in members:
            _scan_part(archive, member, longest_text, name)


def _scan_part(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int, name: str) -> None:
    """Unpack a part as a stream: a damaged one fails its CRC (or inflating) here, before anything is parsed;
    an IngestError too when an XML part holds more than `limit` bytes without a `<` (one text, one tag)."""
    xml = member.filename.lower().endswith((".xml", ".rels")) and member.file_size > limit
    run = 0  # bytes since the last `<`; a run inside one block is shorter than the block, so than `limit`
    try:
        with archive.open(member) as handle:
            while block := handle.read(SCAN_BLOCK):
                if not xml:
                    continue
                first = block.find(b"<")
                if first < 0:
                    run += len(block)
                else:
                    run += first
                if run > limit:
                    raise IngestError(f"{name}: its part {member.filename} holds a text of over {_mb(limit)} "
                                      f"(a cell far over the limit of {get_settings().max_cell_chars:,} "
                                      f"characters, BLAST_MAX_CELL_CHARS, or a damaged file)")
                if first >= 0:
                    run = len(block) - block.rfind(b"<") - 1
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, ValueError) as error:
        raise IngestError(f"{name}: not a readable Excel workbook (damaged zip: {_detail(error)})") from None


def open_source(path: Path, *, sheet: str | None = None, max_bytes: int) -> ContactSource:
    """Check size and format, read the header; an IngestError (one line, naming the file) otherwise."""
    if not path.exists():
        raise IngestError(f"{path.name}: no such file")
    if not path.is_file():
        raise IngestError(f"{path.name}: not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise IngestError(f"{path.name}: {size / 1e6:.1f} MB is over the upload limit of "
                          f"{max_bytes / 1e6:.1f} MB (BLAST_MAX_UPLOAD_BYTES)")
    if size == 0:
        raise IngestError(f"{path.name}: the file is empty")
    try:
        with open(path, "rb") as handle:
            head = handle.read(SAMPLE_BYTES)
    except OSError as error:
        raise IngestError(f"{path.name}: cannot be read ({error.strerror})") from None
    suffix = path.suffix.lower()
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        if _is_encrypted_package(path):
            raise IngestError(f"{path.name}: the workbook is encrypted; remove its password and upload it again")
        raise IngestError(
            f"{path.name}: old Excel (.xls) workbooks are not supported; save it as .xlsx or .csv")
    if head.startswith(b"PK\x03\x04"):
        if suffix and suffix not in EXCEL_SUFFIXES:
            raise IngestError(f"{path.name}: unsupported format {suffix} (use .csv or .xlsx)")
        return ExcelSource(path, sheet)
    if suffix in EXCEL_SUFFIXES:
        raise IngestError(f"{path.name}: not a readable Excel workbook")
    if suffix and suffix not in CSV_SUFFIXES:
        raise IngestError(f"{path.name}: unsupported format {suffix} (use .csv or .xlsx)")
    text_like = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" not in head
    if not text_like:
        raise IngestError(f"{path.name}: unsupported format (binary data, not CSV text)")
    if sheet is not None:
        raise IngestError(f"{path.name}: --sheet applies to Excel workbooks only")
    return CsvSource(path, head)


def _is_encrypted_package(path: Path) -> bool:
    """A password-protected .xlsx is an OLE compound file with an `EncryptedPackage` stream (MS-OFFCRYPTO)."""
    marker = "EncryptedPackage".encode("utf-16-le")
    with open(path, "rb") as handle:
        return marker in handle.read(8 * MiB)
