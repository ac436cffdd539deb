"""Reading contact files: CSV (delimiter and encoding detected) and Excel .xlsx, in bounded chunks.

Every cell is read as text, so numbers are never turned into floats on the way in. A source yields
pandas DataFrames whose columns are the header's identifiers and whose `row_number` column is the
1-based data row (the header row is not counted; blank rows are counted, then dropped).
"""

from __future__ import annotations

import codecs
import csv
import io
import keyword
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd

from campaigns.errors import BlastError

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
ROW_NUMBER = "row_number"
# Columns every chunk carries besides the file's own; a header with one of these names is renamed.
RESERVED = ("row_number", "raw_phone", "phone", "skip_reason")
# Words Jinja2 reads as operators or constants: not usable as variable names.
_JINJA_WORDS = {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "loop", "self"}
_BYTES_UNDEFINED_IN_CP1252 = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")


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


class CsvSource(ContactSource):
    kind = "csv"

    def __init__(self, path: Path, head: bytes):
        self.path = path
        self.encoding = _detect_encoding(path, head)
        with open(path, encoding=self.encoding, newline="") as handle:
            sample = handle.read(SAMPLE_BYTES)
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
        self.skip_lines = reader.line_num  # physical lines up to and including the header
        self.header = Header(names, identifiers_for(names))

    def describe(self) -> str:
        shown = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}[self.delimiter]
        return f"CSV, {self.encoding}, {shown}-separated"

    def chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        width = len(self.header.identifiers)
        try:
            reader = pd.read_csv(
                self.path, sep=self.delimiter, header=None, skiprows=self.skip_lines,
                names=self.header.identifiers, usecols=range(width), dtype=str, keep_default_na=False,
                na_filter=False, skip_blank_lines=False, encoding=self.encoding, chunksize=chunk_rows,
                engine="c", index_col=False,
            )
            with reader:
                for frame in reader:
                    frame = frame.fillna("")
                    frame.insert(0, ROW_NUMBER, frame.index.to_numpy() + 1)
                    yield frame
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
            detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise IngestError(f"{self.path.name}: not a readable CSV file ({detail})") from None


class ExcelSource(ContactSource):
    kind = "xlsx"

    def __init__(self, path: Path, sheet: str | None):
        from openpyxl import load_workbook

        self.path = path
        try:
            # read_only streams the sheet's XML: memory stays bounded whatever the sheet's size.
            self.workbook = load_workbook(path, read_only=True, data_only=True)
        except Exception as error:  # openpyxl raises many kinds for a damaged or foreign zip
            raise IngestError(
                f"{path.name}: not a readable Excel workbook ({type(error).__name__})") from None
        try:
            if sheet is None:
                self.sheet = self.workbook.worksheets[0]
            elif sheet in self.workbook.sheetnames:
                self.sheet = self.workbook[sheet]
            else:
                raise IngestError(f"{path.name}: no sheet named {sheet!r} "
                                  f"(sheets: {', '.join(self.workbook.sheetnames)})")
            self.sheet.reset_dimensions()  # some writers record a wrong size; read what is there
            self.rows = self.sheet.iter_rows(values_only=True)
            names: list[str] = []
            for values in self.rows:
                cells = [_cell_text(value).strip() for value in values]
                if any(cells):
                    while cells and not cells[-1]:
                        cells.pop()
                    names = cells
                    break
            if not names:
                raise IngestError(f"{path.name}: the sheet {self.sheet.title!r} is empty")
            self.header = Header(names, identifiers_for(names))
        except BaseException:
            self.workbook.close()
            raise

    def describe(self) -> str:
        return f"Excel workbook, sheet {self.sheet.title!r}"

    def chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        width = len(self.header.identifiers)
        blank = [""] * width
        numbers: list[int] = []
        records: list[list[str]] = []
        number = 0
        try:
            for values in self.rows:
                number += 1
                cells = [_cell_text(value) for value in values[:width]]
                if len(cells) < width:
                    cells += blank[len(cells):]
                numbers.append(number)
                records.append(cells)
                if len(records) >= chunk_rows:
                    yield self._frame(numbers, records)
                    numbers, records = [], []
            if records:
                yield self._frame(numbers, records)
        finally:
            self.workbook.close()

    def _frame(self, numbers: list[int], records: list[list[str]]) -> pd.DataFrame:
        frame = pd.DataFrame(records, columns=self.header.identifiers, dtype=str)
        frame.insert(0, ROW_NUMBER, numbers)
        return frame


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
        raise IngestError(
            f"{path.name}: old Excel (.xls) workbooks are not supported; save it as .xlsx or .csv")
    if head.startswith(b"PK\x03\x04"):
        if suffix and suffix not in EXCEL_SUFFIXES:
            raise IngestError(f"{path.name}: unsupported format {suffix} (use .csv or .xlsx)")
        if not zipfile.is_zipfile(path):
            raise IngestError(f"{path.name}: not a readable Excel workbook (damaged zip)")
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
