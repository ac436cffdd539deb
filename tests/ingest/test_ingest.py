"""Contact ingest: reading CSV and Excel files, skipping rows with reasons, writing message rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, insert, select

from campaigns import ingest
from campaigns.ingest import phones
from campaigns.ingest.sources import identifiers_for
from campaigns.models import Message, OptOut
from campaigns.states import MessageState
from tests.support.factories import make_campaign

HEADER = ["Phone Number", "Full Name", "Town"]
ROWS = [
    ["0701 234 567", "Amina Nakato", "Kampala"],
    ["+256 772 345 678", "Brian Okello", "Gulu"],
    ["n/a", "Grace Atim", "Lira"],
    ["256701234567", "Joseph Kato", "Jinja"],  # the first number again, written another way
    ["", "Ruth Auma", "Mbale"],
    ["00256 753 111 222", "Sarah Nansubuga", "Masaka"],
]


def write_csv(path: Path, rows=ROWS, header=HEADER, *, delimiter=",", encoding="utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_all(path: Path, **options):
    stream = ingest.read_contacts(path, **options)
    chunks = list(stream)
    rows = [row for chunk in chunks for row in chunk.to_dict("records")]
    return stream, chunks, rows


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"])
def test_csv_delimiter_and_encoding_are_detected(tmp_path, delimiter, encoding):
    # Given a CSV with accented names, in one of the encodings and delimiters spreadsheets write
    rows = [["0701 234 567", "Zoë Ñandú", "Entebbe; lakeside"], ["0772 345 678", "Renée", "Jinja, east"]]
    path = write_csv(tmp_path / "contacts.csv", rows, delimiter=delimiter, encoding=encoding)
    # When read
    stream, _chunks, found = read_all(path)
    # Then the header, the names and the numbers come out right
    assert stream.variables == ["full_name", "town"]
    assert [row["full_name"] for row in found] == ["Zoë Ñandú", "Renée"]
    assert [row["town"] for row in found] == ["Entebbe; lakeside", "Jinja, east"]
    assert [row["phone"] for row in found] == ["+256701234567", "+256772345678"]


def test_bytes_cp1252_does_not_define_are_read_as_latin1(tmp_path):
    # Given a file with a byte that is undefined in cp1252 (only latin-1 reads it)
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"phone,name\n0701234567,Ren\xe9e\x81\n")
    _stream, _chunks, found = read_all(path)
    assert found[0]["name"] == "Renée\x81"


def test_rows_are_skipped_with_reasons_and_counted(tmp_path):
    # Given a file with a repeat, an invalid number, an empty phone cell and an opted-out number
    path = write_csv(tmp_path / "contacts.csv")
    # When read with one number opted out
    stream, _chunks, found = read_all(path, opted_out={"+256772345678"})
    # Then each row has its E.164 number or its reason, and the report adds up
    by_row = {row["row_number"]: (row["phone"], row["skip_reason"]) for row in found}
    # (rows numbered as a spreadsheet shows them: the header is row 1)
    assert by_row == {
        2: ("+256701234567", None),
        3: ("+256772345678", ingest.OPTED_OUT),
        4: (None, phones.LETTERS),
        5: ("+256701234567", ingest.DUPLICATE),
        6: (None, phones.MISSING),
        7: ("+256753111222", None),
    }
    assert stream.report.as_dict() == {
        "rows": 6, "valid": 2, "duplicates": 1, "invalid": 2, "opted_out": 1,
        "reasons": {ingest.OPTED_OUT: 1, phones.LETTERS: 1, ingest.DUPLICATE: 1, phones.MISSING: 1},
    }
    assert found[0]["raw_phone"] == "0701 234 567"
    assert found[0]["full_name"] == "Amina Nakato"


def test_duplicates_are_found_across_chunks_and_chunks_stay_bounded(tmp_path):
    # Given 50 rows where every number appears twice, far apart
    rows = [[f"07012345{i % 25:02d}", f"name {i}", "x"] for i in range(50)]
    path = write_csv(tmp_path / "contacts.csv", rows)
    # When read 7 rows at a time
    stream, chunks, found = read_all(path, chunk_rows=7)
    # Then no chunk is bigger than asked, and only the first occurrence of each number is valid
    assert max(len(chunk) for chunk in chunks) <= 7
    assert [row["skip_reason"] for row in found] == [None] * 25 + [ingest.DUPLICATE] * 25
    assert stream.report.duplicates == 25
    assert [row["row_number"] for row in found] == list(range(2, 52))


def test_blank_rows_keep_row_numbers_and_are_not_reported(tmp_path):
    # Given blank lines between the rows
    path = tmp_path / "contacts.csv"
    path.write_text("phone,name\n0701234567,Amina\n\n,\n0772345678,Brian\n", encoding="utf-8")
    # When read
    stream, _chunks, found = read_all(path)
    # Then row numbers follow the file's rows (the header is row 1), and the blank ones are left out
    assert [(row["row_number"], row["phone"]) for row in found] == [
        (2, "+256701234567"), (5, "+256772345678")]
    assert stream.report.rows == 2


def test_short_and_long_rows_are_padded_and_cut(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("phone,name,town\n0701234567\n0772345678,Brian,Gulu,extra\n", encoding="utf-8")
    _stream, _chunks, found = read_all(path)
    assert [(row["name"], row["town"]) for row in found] == [("", ""), ("Brian", "Gulu")]


@pytest.mark.parametrize(("header", "expected"), [
    (["Name", "Phone"], "Phone"),
    (["name", " MSISDN "], "MSISDN"),
    (["Name", "Mobile No."], "Mobile No."),
    (["Name", "WhatsApp Number", "Notes"], "WhatsApp Number"),
    (["Customer Tel", "Name"], "Customer Tel"),
    (["Name", "Account Number", "Phone"], "Phone"),
    (["cell", "name"], "cell"),
])
def test_phone_column_is_found_by_its_header(tmp_path, header, expected):
    # Given a file whose phone column is named one of the ways people name it
    rows = [["0701234567"] * len(header)]
    path = write_csv(tmp_path / "contacts.csv", rows, header)
    # Then that column is the phone column (headers are read without surrounding spaces)
    assert ingest.read_contacts(path).phone_column == expected


def test_phone_column_can_be_named_case_and_space_insensitively(tmp_path):
    path = write_csv(tmp_path / "contacts.csv", [["Amina", "0701234567"]], ["Name", "Main Contact"])
    stream, _chunks, found = read_all(path, phone_column="main contact")
    assert stream.phone_column == "Main Contact"
    assert found[0]["phone"] == "+256701234567"
    with pytest.raises(ingest.IngestError,
                       match=r"contacts.csv: no column 'Mobile' \(headers: Name, Main Contact\)"):
        ingest.read_contacts(path, phone_column="Mobile")


def test_no_phone_column_lists_the_headers(tmp_path):
    path = write_csv(tmp_path / "people.csv", [["Amina", "Kampala"]], ["Name", "Town"])
    with pytest.raises(ingest.IngestError,
                       match=r"people.csv: no phone column among the headers \(Name, Town\)"):
        ingest.read_contacts(path)


def test_headers_become_unique_template_identifiers():
    headers = ["Full Name", "full-name", "2nd Line", "", "Prénom", "row number", "In", "Phone"]
    assert identifiers_for(headers) == [
        "full_name", "full_name_2", "_2nd_line", "column_4", "prenom", "row_number_2", "in_", "phone_2"]


def make_workbook(path: Path, rows, *, sheet_title="Contacts", extra_sheet=None) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_title
    for row in rows:
        sheet.append(row)
    if extra_sheet is not None:
        other = workbook.create_sheet(extra_sheet[0])
        for row in extra_sheet[1]:
            other.append(row)
    workbook.save(path)
    return path


def test_excel_numeric_cells_are_read_as_numbers_not_floats(tmp_path):
    # Given a workbook whose phone cells are numbers, as Excel stores them (floats), and a date cell
    from datetime import datetime

    path = make_workbook(tmp_path / "contacts.xlsx", [
        ["Phone", "Name", "Visit", "Balance"],
        [256701234567, "Amina", datetime(2026, 12, 1), 1500],
        [2.56772345678e11, "Brian", datetime(2026, 12, 2, 9, 30), 12.5],
        [None, None, None, None],
        ["0753 111 222", "Grace", None, None],
    ])
    # When read
    stream, _chunks, found = read_all(path)
    # Then the numbers are whole, the date is a date, and the blank row keeps its number
    assert [(row["row_number"], row["phone"]) for row in found] == [
        (2, "+256701234567"), (3, "+256772345678"), (5, "+256753111222")]
    assert found[0]["raw_phone"] == "256701234567"
    assert [row["visit"] for row in found] == ["2026-12-01", "2026-12-02 09:30:00", ""]
    assert [row["balance"] for row in found] == ["1500", "12.5", ""]
    assert stream.source.describe() == "Excel workbook, sheet 'Contacts'"


def test_excel_named_sheet_is_read(tmp_path):
    path = make_workbook(tmp_path / "contacts.xlsx", [["Notes"], ["nothing here"]],
                         extra_sheet=("List", [["Mobile", "Name"], ["0701234567", "Amina"]]))
    _stream, _chunks, found = read_all(path, sheet="List")
    assert found[0]["phone"] == "+256701234567"
    with pytest.raises(ingest.IngestError, match=r"no sheet named 'Nope' \(sheets: Contacts, List\)"):
        ingest.read_contacts(path, sheet="Nope")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.csv", b"", "empty.csv: the file is empty"),
    ("blank.csv", b"\n\n  \n", "blank.csv: the file is empty"),
    ("bom.csv", b"\xef\xbb\xbf", "bom.csv: the file is empty"),
    ("contacts.pdf", b"%PDF-1.4 ...", "contacts.pdf: unsupported format .pdf"),
    ("contacts.csv", b"phone,name\x00\x01\x02\x00binary", "contacts.csv: unsupported format (binary data"),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
     "old.xls: old Excel (.xls) workbooks are not supported"),
    ("broken.xlsx", b"PK\x03\x04 not really a zip", "broken.xlsx: not a readable Excel workbook"),
    ("plain.xlsx", b"phone\n0701234567\n", "plain.xlsx: not a readable Excel workbook"),
])
def test_whole_file_problems_are_one_clear_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ingest.IngestError) as raised:
        list(ingest.read_contacts(path))
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_file_over_the_size_limit_is_refused(tmp_path):
    path = write_csv(tmp_path / "big.csv")
    with pytest.raises(ingest.IngestError, match=r"big.csv: .* MB is over the upload limit of 0.0 MB"):
        ingest.read_contacts(path, max_bytes=10)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ingest.IngestError, match=r"nowhere\.csv: no such file"):
        ingest.read_contacts(tmp_path / "nowhere.csv")


def test_header_only_file_reports_no_rows(tmp_path):
    path = write_csv(tmp_path / "contacts.csv", rows=[])
    stream, chunks, _found = read_all(path)
    assert chunks == []
    assert stream.report.as_dict()["rows"] == 0


def test_rejects_report_lists_skipped_rows(tmp_path):
    # Given the messy file; when read through the rejects writer
    path = write_csv(tmp_path / "contacts.csv")
    stream = ingest.read_contacts(path)
    list(ingest.write_rejects(tmp_path / "rejects.csv", stream))
    # Then the CSV names the row as the spreadsheet shows it, the raw value and the reason
    with open(tmp_path / "rejects.csv", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    assert lines == [
        ["row (as the spreadsheet shows it: the header is row 1)", "raw_phone", "reason"],
        ["4", "n/a", phones.LETTERS],
        ["5", "256701234567", ingest.DUPLICATE],
        ["6", "", phones.MISSING],
    ]


# --- load_messages: both databases -----------------------------------------------------------------

TEMPLATE = "Hello {{ full_name }} of {{ town }}"


def messages(engine, campaign_id):
    with engine.connect() as connection:
        return connection.execute(
            select(Message).where(Message.campaign_id == campaign_id).order_by(Message.row_number)).all()


def test_load_messages_writes_pending_and_skipped_rows(engine, tmp_path):
    # Given a campaign, an opted-out number and the messy file
    campaign = make_campaign(engine)
    with engine.begin() as connection:
        connection.execute(insert(OptOut).values(phone="+256753111222", reason="STOP"))
    path = write_csv(tmp_path / "contacts.csv")
    # When the file is loaded
    report = ingest.load_messages(engine, campaign.id, path, region="UG", template=TEMPLATE,
                                  provider="socnet")
    # Then there is one row per data row, pending or skipped with its reason, and the report matches
    rows = messages(engine, campaign.id)
    assert [(m.row_number, m.phone, m.state, m.skip_reason) for m in rows] == [
        (2, "+256701234567", MessageState.PENDING, None),
        (3, "+256772345678", MessageState.PENDING, None),
        (4, None, MessageState.SKIPPED, phones.LETTERS),
        (5, "+256701234567", MessageState.SKIPPED, ingest.DUPLICATE),
        (6, None, MessageState.SKIPPED, phones.MISSING),
        (7, "+256753111222", MessageState.SKIPPED, ingest.OPTED_OUT),
    ]
    assert report.as_dict() == {"rows": 6, "valid": 2, "duplicates": 1, "invalid": 2, "opted_out": 1,
                                "reasons": {phones.LETTERS: 1, ingest.DUPLICATE: 1, phones.MISSING: 1,
                                            ingest.OPTED_OUT: 1}}
    # And the valid rows carry their rendered text, every row its variables and raw value
    assert rows[0].body == "Hello Amina Nakato of Kampala"
    assert rows[1].body == "Hello Brian Okello of Gulu"
    assert rows[2].body is None
    assert json.loads(rows[0].variables) == {"full_name": "Amina Nakato", "town": "Kampala"}
    assert rows[3].raw_phone == "256701234567"
    assert all(m.attempts == 0 and m.created_at is not None and m.created_at.tzinfo is not None for m in rows)


def test_load_messages_skips_rows_the_template_cannot_render(engine, tmp_path):
    # Given rows with an empty town, one awkward value, and a long one for Devino's 1000 characters
    rows = [["0701234567", "Amina", ""], ["0772345678", 'Brian "B" \\ O\'kello\tJr\nII', "Gulu"],
            ["0753111222", "x" * 1000, "Lira"]]
    path = write_csv(tmp_path / "contacts.csv", rows)
    campaign = make_campaign(engine)
    # When loaded for Devino
    report = ingest.load_messages(engine, campaign.id, path, template=TEMPLATE, provider="devino")
    found = messages(engine, campaign.id)
    # Then the first is skipped for the missing town, the last for its length; the middle one is intact
    assert found[0].skip_reason == "missing variable: town"
    assert found[2].skip_reason.startswith("text too long for devino")
    assert found[1].state == MessageState.PENDING
    assert found[1].body == 'Hello Brian "B" \\ O\'kello\tJr\nII of Gulu'
    assert json.loads(found[1].variables) == {"full_name": 'Brian "B" \\ O\'kello\tJr\nII', "town": "Gulu"}
    assert report.valid == 1 and report.invalid == 2
    assert report.reasons["missing variable: town"] == 1


@pytest.mark.parametrize("values", [
    ["Amina", "Brian", ""],  # plain: written by the fast path
    ['say "hi"', "back\\slash", "tab\there"],  # quotes, backslashes, control characters: escaped
    ["line\nbreak", "bell\x07", "nbsp\u00a0and\u2028"],  # unprintable characters
    ["100%", "%s %d %%", "Kampala ✓ 🎉"],  # format characters and wide characters go through as they are
    [None, 3, 4.5],  # not text (an .xlsx cell may be a number)
])
def test_variables_json_is_exactly_what_orjson_writes(values):
    import orjson
    import pandas as pd

    # given a chunk of a column of these values beside a plain one, with awkward column names
    chunk = pd.DataFrame({"name": pd.Series(values, dtype=object), 'the "%s" col': ["a", "b", "c"]})
    # when its variables are written, then each row is orjson's object of that row, byte for byte
    expected = [orjson.dumps({"name": value, 'the "%s" col': other}).decode()
                for value, other in zip(values, ["a", "b", "c"], strict=True)]
    assert ingest.variables_json(chunk, ["name", 'the "%s" col']) == expected


def test_load_messages_keeps_one_live_message_per_phone_across_chunks(engine, tmp_path):
    # Given 300 rows holding 100 numbers, each three times in different formats
    rows = []
    for i in range(300):
        national = f"70{i % 100:07d}"
        rows.append([["0" + national, "+256 " + national, "256" + national + ".0"][i // 100], f"n{i}", "t"])
    path = write_csv(tmp_path / "contacts.csv", rows)
    campaign = make_campaign(engine)
    # When loaded in chunks of 40
    report = ingest.load_messages(engine, campaign.id, path, template=TEMPLATE, provider="socnet",
                                  chunk_rows=40)
    # Then 100 are pending, 200 skipped as duplicates, and no phone is live twice
    assert (report.valid, report.duplicates, report.rows) == (100, 200, 300)
    with engine.connect() as connection:
        counts = dict(connection.execute(
            select(Message.state, func.count()).where(Message.campaign_id == campaign.id)
            .group_by(Message.state)).all())
        live_phones = connection.execute(
            select(func.count(func.distinct(Message.phone)))
            .where(Message.campaign_id == campaign.id, Message.state != MessageState.SKIPPED)).scalar_one()
    assert counts == {MessageState.PENDING: 100, MessageState.SKIPPED: 200}
    assert live_phones == 100


def test_load_messages_writes_nothing_when_the_file_is_unusable(engine, tmp_path):
    campaign = make_campaign(engine)
    path = write_csv(tmp_path / "people.csv", [["Amina"]], ["Name"])
    with pytest.raises(ingest.IngestError):
        ingest.load_messages(engine, campaign.id, path, template=TEMPLATE, provider="socnet")
    assert messages(engine, campaign.id) == []


def test_each_chunk_is_written_with_its_checkpoint_or_not_at_all(engine, tmp_path):
    # Given a file read two rows at a time, and a checkpoint that refuses the second chunk
    campaign = make_campaign(engine)
    path = write_csv(tmp_path / "contacts.csv", [["+256701000001"], ["+256701000002"], ["+256701000003"],
                                                 ["+256701000004"], ["+256701000005"]], ["Phone"])
    seen = []

    def on_chunk(last_row, report, _fraction):
        rows = report.rows  # the report goes on while the chunk is written: its progress is taken now

        def checkpoint(connection):
            if seen:
                raise RuntimeError("refused")
            seen.append((last_row, rows))
        return checkpoint

    # When loaded, then the refusal surfaces
    with pytest.raises(RuntimeError, match="refused"):
        ingest.load_messages(engine, campaign.id, path, template="Hi", provider="socnet", chunk_rows=2,
                             on_chunk=on_chunk)
    # and the first chunk is in, with the progress its checkpoint saw, and nothing of the second
    assert seen == [(3, 2)]
    assert sorted(message.row_number for message in messages(engine, campaign.id)) == [2, 3]


def test_load_optouts_is_empty_without_a_schema(tmp_path):
    from campaigns import db

    engine = db.engine_for(f"sqlite:///{(tmp_path / 'fresh.db').as_posix()}")
    assert ingest.load_optouts(engine) == frozenset()
    engine.dispose()


def test_a_helper_process_checking_numbers_ahead_gives_the_same_chunks(tmp_path, monkeypatch):
    from tests.support.samples import write_contacts_csv

    # given 50,000 messy rows read 20,000 at a time: the numbers of each next chunk are checked by a helper
    path = write_contacts_csv(tmp_path / "contacts.csv", 50_000, seed=11)
    in_helper = []
    submit = phones.AheadOfTime.submit
    monkeypatch.setattr(phones.AheadOfTime, "submit",
                        lambda self, values: in_helper.append(self.pool is not None) or submit(self, values))
    stream, chunks, rows = read_all(path, chunk_rows=20_000)
    assert in_helper == [True, True]  # the second and third chunks' numbers
    # when the same file is read without the helper
    monkeypatch.setattr(ingest, "HELPER_MIN_CHUNK_ROWS", 10**9)
    alone, alone_chunks, alone_rows = read_all(path, chunk_rows=20_000)
    # then every row, verdict and reason is the same, and so is the report
    assert len(chunks) == len(alone_chunks) == 3
    assert rows == alone_rows and stream.report.as_dict() == alone.report.as_dict()
    assert 0 < stream.report.valid < stream.report.rows
