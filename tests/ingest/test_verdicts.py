"""Verdicts that explain themselves: every skipped number says why, in one of a closed set of reasons, and
every report numbers rows as the spreadsheet the operator has open shows them (the header is row 1): the
command line's report and rejects file, and the web app's preview and rejects file; for CSV and Excel."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.export import neutralise
from campaigns.ingest import phones
from tests.support.web import log_in, upload, web_app

# (phone cell, reason); rows 2 to 11 of the sheet, the header being row 1.
CELLS = [
    ("0701 234 567", None),
    ("0701ABC567", phones.LETTERS),  # phonenumbers would send this to +256701222567
    ("-", phones.NOT_A_NUMBER),
    ("0701 23", phones.TOO_SHORT),
    ("07012345678901", phones.TOO_LONG),
    ("+999 701 234567", phones.UNKNOWN_COUNTRY),
    ("+376 777 7777", phones.WRONG_LENGTH),
    ("+256 99 1234567", phones.INVALID),
    ("", phones.MISSING),
    ("0772 345 678", None),
]
REJECTS = [[str(row), cell, reason] for row, (cell, reason) in enumerate(CELLS, start=2) if reason]
REJECTS_HEADER = ["row (as the spreadsheet shows it: the header is row 1)", "raw_phone", "reason"]
# The rejects file as a spreadsheet will open it: a cell that starts like a formula ("-", "+") neutralised.
REJECTS_FILE = [REJECTS_HEADER, *([row, neutralise(cell), reason] for row, cell, reason in REJECTS)]


def write_list(folder: Path, kind: str) -> Path:
    rows = [["Phone", "Name"], *([cell, f"Person {i}"] for i, (cell, _) in enumerate(CELLS))]
    if kind == "csv":
        path = folder / "people.csv"
        with path.open("w", newline="", encoding="utf-8") as stream:
            csv.writer(stream).writerows(rows)
        return path
    path = folder / "people.xlsx"
    workbook = Workbook()
    for row in rows:
        workbook.active.append([cell or None for cell in row])
    workbook.save(path)
    return path


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_blast_import_names_each_reason_and_numbers_rows_as_the_sheet(blast_home, tmp_path, kind):
    # given a list with a valid number first and last, and between them one cell of each kind of bad number
    path = write_list(tmp_path, kind)
    rejects = tmp_path / "rejects.csv"
    # when imported with --json and a rejects file
    result = CliRunner().invoke(app, ["import", str(path), "--json", "--rejects", str(rejects)])
    # then the report's reasons are the categories, one each
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] == 2 and report["invalid"] == len(REJECTS)
    assert report["reasons"] == {reason: 1 for _, reason in CELLS if reason}
    # and the rejects file lists each skipped row as the spreadsheet numbers it, with its raw cell
    with rejects.open(encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == REJECTS_FILE


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_the_upload_preview_numbers_skipped_rows_as_the_sheet(engine, blast_home, tmp_path, monkeypatch, kind):
    # given an operator who uploads the same list
    path = write_list(tmp_path, kind)
    with web_app(tmp_path, monkeypatch) as client:
        token = log_in(client)
        answer = upload(client, token, path.name, path.read_bytes())
        assert answer.status_code == 303
        preview_url = answer.headers["location"]
        # when the preview is shown
        page = html.unescape(client.get(preview_url, params={"template": "Hi {{ name }}", "account": "acct"}).text)
        # then it lists every skipped row with its row number, cell and reason, as the rejects file does
        for row, cell, reason in REJECTS:
            assert f"<tr><td>{row}</td><td>{cell}</td><td>{reason}</td></tr>" in page
        assert "the header is row 1" in page
        rejects = list(csv.reader(io.StringIO(client.get(preview_url + "/rejects.csv").text)))
        assert rejects == REJECTS_FILE
