"""`blast import FILE`: the dry-run report.

The exit-code and one-line-error contract is checked through the real console entry point (a
subprocess); the rest runs in process with typer's CliRunner, which is much faster.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.ingest import IngestError
from campaigns.models import Message, OptOut

KEYS = ["rows", "valid", "duplicates", "invalid", "opted_out", "reasons"]
ROWS = [
    ["0701 234 567", "Amina"],
    ["+256-772-345-678", "Brian"],
    ["256701234567.0", "Amina again"],
    ["not a number", "Grace"],
    ["(0753) 111.222", "Joseph"],
]


def blast(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the `blast` console script's entry point (campaigns.cli:main) in a fresh interpreter."""
    return subprocess.run([sys.executable, "-c", "from campaigns.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
                          cwd=Path(__file__).resolve().parents[2])


def blast_in_process(*args: str):
    return CliRunner().invoke(app, list(args))


def write_csv(path: Path, *, delimiter=",", encoding="utf-8", header=("Phone", "Name"), rows=ROWS) -> Path:
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(("delimiter", "encoding"), [(",", "utf-8"), (";", "utf-8-sig"), ("\t", "cp1252"),
                                                     ("|", "latin-1")])
def test_json_report_for_messy_csv(blast_home, tmp_path, delimiter, encoding):
    # Given a messy CSV in one of the delimiters and encodings spreadsheets write
    rows = [*ROWS, ["0782 000 111", "Zoë Ñandú"]]
    path = write_csv(tmp_path / "contacts.csv", delimiter=delimiter, encoding=encoding, rows=rows)
    # When imported with --json (once through the console script, else in process)
    if delimiter == ",":
        result = blast("import", str(path), "--json")
        assert result.returncode == 0, result.stderr
    else:
        result = blast_in_process("import", str(path), "--json")
        assert result.exit_code == 0, result.output
    # Then it prints exactly the report's keys, with the counts
    report = json.loads(result.stdout)
    assert list(report) == KEYS
    assert report == {"rows": 6, "valid": 4, "duplicates": 1, "invalid": 1, "opted_out": 0,
                      "reasons": {"duplicate": 1, "letters in the number": 1}}
    # And a dry run creates no database
    assert not (blast_home / "blast.db").exists()


def test_table_report_and_rejects_file(blast_home, tmp_path):
    # Given the messy CSV; when imported with --rejects
    path = write_csv(tmp_path / "contacts.csv")
    rejects = tmp_path / "rejects.csv"
    result = blast_in_process("import", str(path), "--rejects", str(rejects))
    # Then a table shows the counts and the rejects CSV lists the skipped rows
    assert result.exit_code == 0, result.output
    for label in ("rows read", "valid", "duplicates", "invalid", "letters in the number", "opted out"):
        assert label in result.stdout
    assert "phone column 'Phone'" in result.stdout
    with open(rejects, encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [
            ["row (as the spreadsheet shows it: the header is row 1)", "raw_phone", "reason"],
            ["4", "256701234567.0", "duplicate"],
            ["5", "not a number", "letters in the number"]]


def test_excel_with_numeric_cells_and_a_named_sheet(blast_home, tmp_path):
    # Given a workbook whose second sheet holds numbers typed as numbers
    workbook = Workbook()
    workbook.active.title = "Readme"
    workbook.active.append(["nothing to see"])
    sheet = workbook.create_sheet("List")
    sheet.append(["Name", "MSISDN"])
    sheet.append(["Amina", 256701234567])
    sheet.append(["Brian", 2.56772345678e11])
    sheet.append(["Grace", "0753111222"])
    path = tmp_path / "contacts.xlsx"
    workbook.save(path)
    # When imported from that sheet
    result = blast_in_process("import", str(path), "--sheet", "List", "--json")
    # Then every number is valid
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid"] == 3


def test_phone_column_and_region_flags(blast_home, tmp_path):
    # Given Kenyan numbers in a column with an unusual name
    path = write_csv(tmp_path / "kenya.csv", header=("Name", "Reach me on"),
                     rows=[["Wanjiku", "0712 345 678"], ["Otieno", "0722 000 111"]])
    # When imported with the column named and Kenya as the default region
    result = blast_in_process("import", str(path), "--phone-column", "reach me on", "--region", "KE",
                              "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid"] == 2


def test_opt_outs_are_honoured_and_nothing_is_written(database_url, engine, tmp_path):
    # Given a migrated database with one opted-out number
    with engine.begin() as connection:
        connection.execute(insert(OptOut).values(phone="+256753111222"))
    path = write_csv(tmp_path / "contacts.csv")
    # When imported
    result = blast_in_process("import", str(path), "--json")
    # Then the number counts as opted out, and no message was written
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["opted_out"] == 1
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Message)).scalar_one() == 0


def unreadable(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(("name", "content", "extra_env", "message"), [
    ("people.csv", b"Name,Town\nAmina,Kampala\n", {},
     "people.csv: no phone column among the headers (Name, Town)"),
    ("big.csv", b"phone\n0701234567\n", {"BLAST_MAX_UPLOAD_BYTES": "5"},
     "big.csv: 0.0 MB is over the upload limit"),
])
def test_whole_file_errors_are_one_line_and_exit_1(blast_home, tmp_path, name, content, extra_env, message):
    # Given an unusable file; when imported through the console script
    result = blast("import", str(unreadable(tmp_path, name, content)), env=extra_env)
    # Then one line on stderr names the file and the problem, exit code 1, no traceback
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.csv", b"", "empty.csv: the file is empty"),
    ("contacts.pdf", b"%PDF-1.7", "contacts.pdf: unsupported format .pdf"),
    ("contacts.xlsx", b"PK\x03\x04broken", "contacts.xlsx: not a readable Excel workbook"),
    ("contacts.csv", b"\x00\x01binary\x00", "contacts.csv: unsupported format (binary data"),
])
def test_other_whole_file_errors_are_operator_errors(blast_home, tmp_path, name, content, message):
    # Given an unusable file; when imported
    result = blast_in_process("import", str(unreadable(tmp_path, name, content)))
    # Then the command stops with an IngestError (main() prints it as one line, exit 1)
    assert isinstance(result.exception, IngestError)
    assert str(result.exception).startswith(message)


def test_unknown_region_is_an_operator_error(blast_home, tmp_path):
    result = blast_in_process("import", str(write_csv(tmp_path / "contacts.csv")), "--region", "XX")
    assert "unknown region 'XX'" in str(result.exception)


def test_rejects_file_neutralises_formula_cells(blast_home, tmp_path):
    # given a list whose bad phone cells are spreadsheet formulas
    path = write_csv(tmp_path / "contacts.csv", rows=[["=HYPERLINK(\"http://x\")", "A"], ["+SUM(1)", "B"],
                                                      ["@SUM(A1)", "C"], ["0772 123 456", "D"]])
    rejects = tmp_path / "rejects.csv"
    result = blast_in_process("import", str(path), "--rejects", str(rejects))
    assert result.exit_code == 0, result.output
    # then no rejected cell starts with what a spreadsheet would run
    with open(rejects, encoding="utf-8") as handle:
        cells = [cell for row in list(csv.reader(handle))[1:] for cell in row[1:]]
    assert len(cells) == 6 and not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)


def test_import_draws_a_progress_bar_on_a_terminal(blast_home, tmp_path, monkeypatch):
    from rich.console import Console

    from campaigns.cli import output

    # given a file read in four chunks, and stderr a terminal
    rows = [[f"+25677{row:07d}", f"Person {row}"] for row in range(40)]
    path = write_csv(tmp_path / "contacts.csv", rows=rows)
    monkeypatch.setenv("BLAST_INGEST_CHUNK_ROWS", "10")
    terminal = Console(force_terminal=True, record=True, width=120)
    monkeypatch.setattr(output, "err_console", terminal)
    # when it is imported
    result = blast_in_process("import", str(path), "--json")
    # then the bar said how far it had come: the share of the file read and the rows to send
    assert result.exit_code == 0, result.output
    drawn = terminal.export_text()
    assert "reading contacts.csv" in drawn and "40 rows, 40 to send" in drawn and "100%" in drawn
