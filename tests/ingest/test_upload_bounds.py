"""Uploads are bounded: damaged, foreign and oversized workbooks and CSVs give one line naming the file (the
CLI through its real console entry point, the web app through its upload page), the memory of `blast import`
stays under MEMORY_BOUND_MB whatever the workbook holds, and uploads are deleted when launched, discarded or
old. Every hostile file is made here, by the test; none is committed.
"""

from __future__ import annotations

import csv
import html as html_module
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from campaigns.models import Campaign, Message
from campaigns.web import uploads
from tests.support.web import log_in, upload, web_app

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
# Peak resident memory of one `blast import` (the interpreter, pandas and openpyxl take about 120 MB of it)
# for any workbook, and for a CSV whose longest field is at most 40 MB; README "Uploads are bounded".
MEMORY_BOUND_MB = 300

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
RELS = ('<?xml version="1.0" encoding="UTF-8"?><Relationships '
        'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>')
WORKBOOK = ('<?xml version="1.0" encoding="UTF-8"?><workbook ' + NS + ' xmlns:r="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships"><sheets><sheet name="List" sheetId="1" r:id="rId1"/></sheets>'
            '</workbook>')
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships '
    'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>')
SHEET_HEAD = (f'<?xml version="1.0" encoding="UTF-8"?><worksheet {NS}><sheetData>'
              '<row r="1"><c r="A1" t="inlineStr"><is><t>phone</t></is></c>'
              '<c r="B1" t="inlineStr"><is><t>name</t></is></c></row>')
SHEET_TAIL = "</sheetData></worksheet>"
FEW_STRINGS = f'<sst {NS}><si><t>Amina</t></si><si><t>Brian</t></si></sst>'


def data_rows(count: int, *, first: int = 2, name_string: int = 0):
    """Rows of a unique phone (a number) and a name (shared string `name_string`)."""
    for number in range(first, first + count):
        yield (f'<row r="{number}"><c r="A{number}"><v>256701{number:06d}</v></c>'
               f'<c r="B{number}" t="s"><v>{name_string}</v></c></row>')


def repeated(block: bytes, total: int):
    for _ in range(total // len(block)):
        yield block


def write_workbook(path: Path, sheet, strings=(FEW_STRINGS,), *, level: int = 9,
                   method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A minimal .xlsx whose sheet and shared strings are written from iterables of text or bytes, streamed."""
    with zipfile.ZipFile(path, "w", method, compresslevel=level if method == zipfile.ZIP_DEFLATED else None
                         ) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        for part, pieces in (("xl/worksheets/sheet1.xml", sheet), ("xl/sharedStrings.xml", strings)):
            with archive.open(part, "w", force_zip64=True) as handle:
                for piece in pieces:
                    handle.write(piece if isinstance(piece, bytes) else piece.encode())
    return path


def good_workbook(path: Path, rows: int = 3000) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["phone", "name"])
    for number in range(rows):
        sheet.append([f"+2567012{number:05d}", f"name {number}"])
    workbook.save(path)
    return path


def flip_sheet_bytes(path: Path) -> Path:
    """Flip bytes in the middle of the sheet's packed data (the zip directory stays readable)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size // 2
    for offset in range(middle, middle + 16):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


# Run in the child: at exit, its peak resident memory since it started (VmHWM, kB). Not the child's
# ru_maxrss: Linux folds the memory of the process it was forked from into that, so it grows with the test
# run's own size (a child of a 300 MB pytest "used" 304 MB before reading a byte).
PEAK_PROBE = """
import atexit, os
def _peak():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["BLAST_TEST_PEAK_FILE"], "w") as out:
        out.write(peak)
atexit.register(_peak)
from campaigns.cli import main
main()
"""


def run_import(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """`blast import ARGS` in a fresh interpreter: its result and its own peak resident memory (MB)."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"blast-import-{os.getpid()}-{time.monotonic_ns()}"
    with open(f"{out}.out", "w+") as stdout, open(f"{out}.err", "w+") as stderr:
        result = subprocess.run(
            [sys.executable, "-c", PEAK_PROBE, "import", *args], stdout=stdout, stderr=stderr, text=True,
            cwd=ROOT, env={**os.environ, **(env or {}), "BLAST_TEST_PEAK_FILE": f"{out}.peak"})
        stdout.seek(0)
        stderr.seek(0)
        result.stdout, result.stderr = stdout.read(), stderr.read()
    peak_kb = int(Path(f"{out}.peak").read_text())
    for suffix in (".out", ".err", ".peak"):
        Path(f"{out}{suffix}").unlink()
    return result, peak_kb / 1024


def one_line_error(result: subprocess.CompletedProcess, message: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert re.search(message, lines[0]), lines[0]
    return lines[0]


# --- damaged, foreign and empty files -----------------------------------------------------------------------

def _damaged_zip(tmp: Path) -> Path:
    return flip_sheet_bytes(good_workbook(tmp / "flipped.xlsx"))


def _truncated_zip(tmp: Path) -> Path:
    path = good_workbook(tmp / "truncated.xlsx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _damaged_xml(tmp: Path) -> Path:
    return write_workbook(tmp / "badxml.xlsx", [SHEET_HEAD, *data_rows(5), '<row r="9"><c r="A9"><v>1</c>'])


def _damaged_xml_late(tmp: Path) -> Path:
    # a stored (unpacked) sheet whose XML breaks after 3,000 good rows: the first rows read well (openpyxl reads
    # the whole sheet when opening it unless a <dimension> comes first, as Excel writes it)
    head = SHEET_HEAD.replace("<sheetData>", '<dimension ref="A1:B3001"/><sheetData>')
    return write_workbook(tmp / "latebad.xlsx", [head, *data_rows(3000), "<row><<<", SHEET_TAIL],
                          method=zipfile.ZIP_STORED)


def _foreign_zip(tmp: Path) -> Path:
    path = tmp / "report.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("report.txt", "not a workbook")
    return path


def _encrypted(tmp: Path) -> Path:
    # what Excel writes for a password-protected workbook: an OLE compound file holding `EncryptedPackage`
    path = tmp / "locked.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "EncryptedPackage".encode("utf-16-le")
                     + bytes(4096))
    return path


def _zip_encrypted(tmp: Path) -> Path:
    path = write_workbook(tmp / "zipcrypt.xlsx", [SHEET_HEAD, *data_rows(3), SHEET_TAIL])
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    for info in infos:  # set the "encrypted" bit in each local header and central directory entry
        data[info.header_offset + 6] |= 0x01
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        data[central + 8] |= 0x01
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))
    return path


def _empty_workbook(tmp: Path) -> Path:
    return write_workbook(tmp / "blank.xlsx", [f'<?xml version="1.0"?><worksheet {NS}><sheetData/></worksheet>'])


def _write(name: str, content: bytes):
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(content)
        return path
    return make


BAD_FILES = {  # case: (how to make the file, what the line says after "NAME: ")
    "damaged zip (bytes flipped in the sheet)": (_damaged_zip, r"not a readable Excel workbook"),
    "truncated zip": (_truncated_zip, r"not a readable Excel workbook \(damaged zip"),
    "damaged XML": (_damaged_xml, r"not a readable Excel workbook \(damaged"),
    "damaged XML after good rows": (_damaged_xml_late, r"not a readable Excel workbook \(damaged near row"),
    "a zip that is not a workbook": (_foreign_zip, r"not an Excel workbook"),
    "password-protected workbook": (_encrypted, r"the workbook is encrypted"),
    "zip-encrypted workbook": (_zip_encrypted, r"the workbook is encrypted"),
    "workbook with an empty sheet": (_empty_workbook, r"the sheet 'List' is empty"),
    "empty CSV": (_write("blank.csv", b"\r\n  \r\n"), r"the file is empty"),
    "CSV without a header": (_write("noheader.csv", b"0701234567,Amina\n0702345678,Brian\n"),
                             r"no phone column among the headers"),
    "CSV with a UTF-8 mark and other bytes": (_write("latin.csv", b"\xef\xbb\xbfphone,name\n0701234567,Ren\xe9e\n"),
                                              r"not readable as utf-8"),
    "CSV with a UTF-16 mark and a broken character": (
        _write("utf16.csv", b"\xff\xfe" + "phone,name\n0701234567,".encode("utf-16-le") + b"\x00\xd8A\x00"),
        r"not readable as utf-16"),
}


# Runs `blast import FILE --json` for each file in turn, in one interpreter (an interpreter's start costs
# seconds): the real console entry point, its stdout and stderr and exit code per file, as JSON lines.
IMPORT_EACH = """
import contextlib, io, json, sys
from campaigns.cli import main
for path in sys.argv[1:]:
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = ["blast", "import", path, "--json"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
    print(json.dumps([path, code, out.getvalue(), err.getvalue()]), file=sys.__stdout__, flush=True)
"""


@pytest.fixture(scope="module")
def bad_file_imports(tmp_path_factory):
    """case -> (file, `blast import` result), every bad file imported by one real `blast` process."""
    folder = tmp_path_factory.mktemp("bad-files")
    home = folder / "blast-home"
    paths = {case: make(folder) for case, (make, _message) in BAD_FILES.items()}
    environment = {**os.environ, "BLAST_HOME": str(home), "BLAST_CONFIG": str(folder / "blast.toml")}
    environment.pop("BLAST_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH, *map(str, paths.values())], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = {}
    for line in done.stdout.splitlines():
        path, code, out, err = json.loads(line)
        results[path] = subprocess.CompletedProcess(["blast", "import", path], code, out, err)
    return {case: (path, results[str(path)]) for case, path in paths.items()}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_one_line_errors_from_blast_import(bad_file_imports, case):
    # given a damaged, foreign, encrypted or empty file
    # when `blast import` reads it (the real console entry point, in a process of its own)
    path, result = bad_file_imports[case]
    # then one line on stderr names the file and the problem: exit code 1, no traceback
    one_line_error(result, re.escape(f"{path.name}: ") + BAD_FILES[case][1])


def test_rows_over_the_limit_refuse_the_file(blast_home, tmp_path):
    # given a CSV and a workbook of 30 rows each, and a limit of 25 rows per file
    rows = [[f"07012{number:05d}", "x"] for number in range(30)]
    with open(tmp_path / "many.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["phone", "name"], *rows])
    write_workbook(tmp_path / "many.xlsx", [SHEET_HEAD, *data_rows(30), SHEET_TAIL])
    for name in ("many.csv", "many.xlsx"):
        # when each is imported
        result, _memory = run_import(str(tmp_path / name), env={"BLAST_MAX_ROWS_PER_FILE": "25"})
        # then the file is refused in one line that names the limit and its setting
        one_line_error(result, rf"{name}: more than 25 rows, the limit per file \(BLAST_MAX_ROWS_PER_FILE\)")
    # and at the limit the same file is read
    result, _memory = run_import(str(tmp_path / "many.csv"), "--json", env={"BLAST_MAX_ROWS_PER_FILE": "30"})
    assert result.returncode == 0, result.stderr


# --- memory: hostile workbooks (the 1.5 MB files took 3.1 GB) -----------------------------------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    gigabyte_and_a_half = 1536 * MiB
    block = 16 * MiB
    return {
        # one shared string of 1.5 GB of "a": 6.6 MB packed (zlib's fastest level, so the test is quick: about
        # 230 to 1; Excel's own level packs it 1,000 to 1, to the 1.5 MB)
        "huge shared string": write_workbook(
            folder / "string.xlsx", [SHEET_HEAD, *data_rows(3), SHEET_TAIL],
            [f"<sst {NS}><si><t>", *repeated(b"a" * block, gigabyte_and_a_half), "</t></si></sst>"], level=1),
        # 1.5 GB of whitespace inside the sheet's data
        "whitespace bomb": write_workbook(
            folder / "spaces.xlsx", [SHEET_HEAD, *repeated(b" " * block, gigabyte_and_a_half),
                                     *data_rows(3), SHEET_TAIL], level=1),
    }


@pytest.mark.parametrize(("case", "message"), [
    ("huge shared string", r"string\.xlsx: its shared strings unpack to 1,536\.0 MiB, over the limit of 64\.0 MiB"),
    ("whitespace bomb", r"spaces\.xlsx: unpacks to 1,536\.0 MiB, over the limit of 512\.0 MiB"),
])
def test_hostile_workbooks_are_refused_before_unpacking(blast_home, hostile, case, message):
    # given a workbook of a few MB that unpacks to 1.5 GB
    assert hostile[case].stat().st_size < 8 * MiB
    # when imported
    result, memory = run_import(str(hostile[case]))
    # then the zip directory's sizes refuse it in one line, and memory stays under the bound
    one_line_error(result, message)
    assert memory < MEMORY_BOUND_MB, f"{memory:.0f} MB"


@pytest.mark.parametrize("case", ["huge shared string", "whitespace bomb"])
def test_compression_ratio_alone_refuses_a_zip_bomb(blast_home, hostile, case):
    # given the same workbooks, with size limits raised far above them
    limits = {"BLAST_MAX_UNPACKED_BYTES": str(1 << 40), "BLAST_MAX_SHARED_STRINGS_BYTES": str(1 << 40)}
    # when imported, then the compression ratio refuses them, within the memory bound
    result, memory = run_import(str(hostile[case]), env=limits)
    one_line_error(result, r"is packed [\d,]+ to 1, over the limit of 200 \(BLAST_MAX_COMPRESSION_RATIO\)")
    assert memory < MEMORY_BOUND_MB, f"{memory:.0f} MB"


@pytest.mark.parametrize("case", ["huge shared string", "whitespace bomb"])
def test_long_text_scan_refuses_what_the_directory_lets_through(blast_home, hostile, case):
    # given the same workbooks with every limit the zip directory is checked against raised
    limits = {"BLAST_MAX_UNPACKED_BYTES": str(1 << 40), "BLAST_MAX_SHARED_STRINGS_BYTES": str(1 << 40),
              "BLAST_MAX_COMPRESSION_RATIO": "100000"}
    # when imported, then the streamed scan finds the long text before any XML parser holds it
    result, memory = run_import(str(hostile[case]), env=limits)
    one_line_error(result, r"holds a text of over 1\.0 MiB \(a cell far over the limit of 10,000 characters")
    assert memory < MEMORY_BOUND_MB, f"{memory:.0f} MB"


def test_overlong_cells_are_rejected_rows_and_repeated_long_strings_stay_bounded(blast_home, tmp_path):
    # given 60,000 rows whose name is one shared string of 9,000 characters (540 M characters once expanded),
    # and row 7 whose name is a shared string of 20,000 characters (over the 10,000 cap)
    strings = [f"<sst {NS}><si><t>{'n' * 9000}</t></si><si><t>{'L' * 20000}</t></si></sst>"]
    sheet = [SHEET_HEAD, *data_rows(5), *data_rows(1, first=7, name_string=1), *data_rows(60000, first=8),
             SHEET_TAIL]
    path = write_workbook(tmp_path / "long.xlsx", sheet, strings)
    rejects = tmp_path / "rejects.csv"
    # when imported with a rejects file
    result, memory = run_import(str(path), "--json", "--rejects", str(rejects))
    # then row 7 is a reject with its reason (numbered as the spreadsheet shows it), every other row is valid,
    # within the memory bound
    assert result.returncode == 0, result.stderr
    assert '"valid": 60005' in result.stdout
    with open(rejects, encoding="utf-8") as handle:
        assert list(csv.reader(handle))[1:] == [["7", "256701000007", "cell too long (name: over 10,000 characters)"]]
    assert memory < MEMORY_BOUND_MB, f"{memory:.0f} MB"


def test_csv_with_a_huge_field_is_a_rejected_row_within_the_bound(blast_home, tmp_path):
    # given a CSV whose second row holds a 40 MB name
    path = tmp_path / "field.csv"
    with open(path, "wb") as handle:
        handle.write(b"phone,name\n0701234567,Amina\n0702345678,\"")
        for _ in range(40):
            handle.write(b"x" * MiB)
        handle.write(b"\"\n0703456789,Grace\n")
    # when imported, then that row is a reject and the others are read, within the memory bound
    result, memory = run_import(str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert '"valid": 2' in result.stdout and '"cell too long (name: over 10,000 characters)": 1' in result.stdout
    assert memory < MEMORY_BOUND_MB, f"{memory:.0f} MB"


# --- the web app ------------------------------------------------------------------------------------------------

@pytest.fixture
def web(engine, blast_home, tmp_path, monkeypatch):
    """The web app (SQLite and Postgres) with one admin and one account, logged in: (client, csrf token)."""
    monkeypatch.setattr(uploads, "_last_sweep", None)
    with web_app(tmp_path, monkeypatch, raise_server_exceptions=False) as client:
        yield client, log_in(client)


def stored_uploads() -> list[str]:
    folder = uploads.uploads_folder()
    return sorted(entry.name for entry in folder.iterdir()) if folder.is_dir() else []


def shown_error(html: str) -> str:
    return html_module.unescape(re.search(r'<p class="error" id="upload-error">([^<]*)</p>', html).group(1))


WEB_CASES = ["damaged zip (bytes flipped in the sheet)", "damaged XML", "a zip that is not a workbook",
             "password-protected workbook", "workbook with an empty sheet", "CSV with a UTF-8 mark and other bytes"]


@pytest.mark.parametrize("case", WEB_CASES)
def test_upload_page_shows_one_line_for_a_bad_file_and_keeps_nothing(web, tmp_path, case):
    client, token = web
    make, message = BAD_FILES[case]
    path = make(tmp_path)
    # when the operator uploads it (under another name: the page must name the operator's file)
    answer = upload(client, token, f"My List{path.suffix}", path.read_bytes())
    # then the upload page answers 400 with one line naming the file, never a 500, and the file is gone
    assert answer.status_code == 400, answer.text[:300]
    shown = shown_error(answer.text)
    assert "\n" not in shown and re.match(re.escape(f"My List{path.suffix}: ") + message, shown), shown
    assert stored_uploads() == []


def test_upload_page_refuses_a_zip_bomb_in_one_line(web, hostile):
    client, token = web
    # when a workbook of a few MB unpacking to 1.5 GB of whitespace is uploaded
    answer = upload(client, token, "spaces.xlsx", hostile["whitespace bomb"].read_bytes())
    # then it is refused on the upload page by its declared sizes
    assert answer.status_code == 400
    assert shown_error(answer.text).startswith("spaces.xlsx: unpacks to 1,536.0 MiB, over the limit")
    assert stored_uploads() == []


def test_damage_after_the_first_rows_is_shown_on_the_preview_page(web, tmp_path):
    client, token = web
    # given a workbook whose first 3,000 rows are good and whose XML then breaks: the upload takes it
    path = _damaged_xml_late(tmp_path)
    answer = upload(client, token, "late.xlsx", path.read_bytes())
    assert answer.status_code == 303
    # when its preview (the dry run over the whole file) is opened
    preview = client.get(answer.headers["location"])
    # then the page explains it in one line naming the file, not a 500
    assert preview.status_code in (200, 400)
    assert re.search(r"late\.xlsx: not a readable Excel workbook \(damaged near row 3002",
                     html_module.unescape(preview.text))


def test_the_preview_checks_a_big_files_first_rows_and_says_so(web, monkeypatch):
    client, token = web
    # given a preview that may read 30 rows inside its request (in chunks of 10), and a list of 95
    monkeypatch.setattr(uploads, "PREVIEW_CHECK_ROWS", 30)
    monkeypatch.setattr(uploads, "PREVIEW_CHUNK_ROWS", 10)
    contacts = "phone,name\n" + "".join(f"+2567720{i:05d},P{i}\n" for i in range(95))
    answer = upload(client, token, "many.csv", contacts.encode())
    # when its preview is opened
    preview = html_module.unescape(client.get(answer.headers["location"]).text)
    # then the counts are those of the first 30 rows, and the page says the launch checks the rest
    assert "Counts for the first 30 rows: the whole file is checked when the campaign is launched." in preview
    assert "Rows 30 · valid 30" in preview


def test_launch_deletes_the_upload(web, engine):
    client, token = web
    # given an uploaded list
    location = upload(client, token, "people.csv", b"phone,name\n+256701234567,Amy\n+256772345678,Bo\n"
                      ).headers["location"]
    upload_token = location.split("/")[-1]
    assert stored_uploads() == [upload_token]
    # when it is launched
    answer = client.post(f"/uploads/{upload_token}/launch", data={
        "csrf_token": token, "account": "acct", "template": "Hi {{ name }}", "phone_column": "phone",
        "at": "2099-01-01T09:00+00:00"}, follow_redirects=False)
    # then the campaign holds its rows and the file is gone
    assert answer.status_code == 303 and answer.headers["location"].startswith("/campaigns/")
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Message)).scalar_one() == 2
        assert connection.execute(select(Campaign.name)).scalar_one() == "people"
    assert stored_uploads() == []
    assert client.get(location).status_code == 404


def test_discard_deletes_the_upload(web):
    client, token = web
    # given an uploaded list whose preview offers the discard button
    location = upload(client, token, "people.csv", b"phone\n+256701234567\n").headers["location"]
    assert 'id="discard"' in client.get(location).text
    # when it is discarded
    answer = client.post(f"{location}/discard", data={"csrf_token": token}, follow_redirects=False)
    # then it is gone, and the upload page says so
    assert answer.status_code == 303 and stored_uploads() == []
    assert "upload discarded" in client.get(answer.headers["location"]).text
    # and a discard without the CSRF token is refused
    location = upload(client, token, "people.csv", b"phone\n+256701234567\n").headers["location"]
    assert client.post(f"{location}/discard", data={}).status_code == 403
    assert len(stored_uploads()) == 1


def age(token: str, hours: float) -> None:
    moment = time.time() - hours * 3600
    os.utime(uploads.uploads_folder() / token / "name.txt", (moment, moment))


def test_old_uploads_are_swept_unless_a_schedule_reads_them(web, engine):
    from campaigns import reminders

    client, token = web
    # given three uploads: a fresh one, one 25 hours old, and one 25 hours old that a reminder schedule reads
    tokens = [upload(client, token, f"list{n}.csv", b"phone\n+256701234567\n").headers["location"].split("/")[-1]
              for n in range(3)]
    fresh, old, scheduled = tokens
    reminders.add(engine, name="weekly", account_name="acct", source_file=uploads.find_upload(scheduled).path,
                  template="Hi", cron="0 9 * * 1", timezone="UTC")
    age(old, 25)
    age(scheduled, 25)
    # when the sweep runs (BLAST_UPLOAD_MAX_AGE_HOURS: 24 by default)
    deleted = uploads.sweep()
    # then only the old unscheduled one is deleted
    assert deleted == [old]
    assert stored_uploads() == sorted([fresh, scheduled])
    # and launching the scheduled one keeps its file too: the schedule reads it at every firing
    assert not uploads.discard(uploads.find_upload(scheduled))
    assert scheduled in stored_uploads()


def test_web_start_sweeps_old_uploads(web, monkeypatch):
    from campaigns.web.app import create_app

    client, token = web
    # given an upload 25 hours old and a limit of 24 hours
    stale = upload(client, token, "old.csv", b"phone\n+256701234567\n").headers["location"].split("/")[-1]
    age(stale, 25)
    assert stored_uploads() == [stale]
    # when the web app starts again
    monkeypatch.setattr(uploads, "_last_sweep", None)
    create_app()
    # then the old upload is gone
    assert stored_uploads() == []
