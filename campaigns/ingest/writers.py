"""Bulk writing of ingested message rows: COPY on Postgres, executemany on SQLite.

Both take the chunks of `campaigns.ingest` with each row's rendered text and variables (JSON text) and
write every row: `pending` when its skip reason is None, else `skipped` with the reason, each chunk in its own
transaction with the caller's checkpoint. Chunks with per-row times (`campaigns.ingest.timing`) also fill
`send_at`, `timezone` and `dedupe_key`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from itertools import repeat

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection, Engine

from campaigns.ingest.timing import KEY, SEND_AT, ZONE
from campaigns.models import Message, utcnow
from campaigns.states import MessageState

SERVER_DEFAULTS = ("attempts", "created_at", "updated_at")  # what Postgres fills in (see PostgresCopyWriter)
COLUMNS = ("campaign_id", "row_number", "phone", "raw_phone", "variables", "body", "state", "skip_reason",
           "attempts", "created_at", "updated_at")
# Chunk column -> message column, written when the chunk has them.
TIMING_COLUMNS = ((SEND_AT, "send_at"), (ZONE, "timezone"), (KEY, "dedupe_key"))
RAW_PHONE_WIDTH = 64  # message.raw_phone is VARCHAR(64): longer cells are cut (the rest is no number)
REASON_WIDTH = 200  # message.skip_reason
COPY_BLOCK_CHARS = 1 << 20  # COPY data goes out in blocks of this many characters


def _rows(chunk: pd.DataFrame, bodies: np.ndarray, variables: list[str]):
    """The per-row columns, aligned, as Python objects (None is NULL)."""
    raw = [value if len(value) <= RAW_PHONE_WIDTH else value[:RAW_PHONE_WIDTH]
           for value in chunk["raw_phone"].to_numpy(dtype=object)]
    reasons = chunk["skip_reason"].to_numpy(dtype=object)
    reasons = [None if reason is None or reason != reason else reason[:REASON_WIDTH] for reason in reasons]
    pending, skipped = MessageState.PENDING.value, MessageState.SKIPPED.value
    states = [pending if reason is None else skipped for reason in reasons]
    numbers = chunk["row_number"].to_numpy(dtype=np.int64).tolist()
    phones = chunk["phone"].to_numpy(dtype=object).tolist()
    return numbers, phones, raw, variables, bodies.tolist(), states, reasons


def _timing(chunk: pd.DataFrame) -> list[list]:
    """The per-row time columns present in the chunk (see TIMING_COLUMNS), as lists."""
    return [chunk[name].to_numpy(dtype=object).tolist() for name, _ in TIMING_COLUMNS if name in chunk]


def _columns(timed: bool) -> tuple[str, ...]:
    return COLUMNS + tuple(column for _, column in TIMING_COLUMNS) if timed else COLUMNS


def _copy_time(value: datetime | None) -> str:
    return COPY_NULL if value is None else value.isoformat(sep=" ")


# COPY's text format: a tab between fields, \N for NULL, and these four characters escaped in a value.
COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_texts(values: list) -> list[str]:
    """A column of str and None as COPY's text format writes it. The usual column, with no backslash, tab or
    line break anywhere, is checked in one pass and kept as it is."""
    texts = [value for value in values if value is not None]
    joined = "".join(texts)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:  # four scans beat one regex
        texts = [value.translate(_COPY_ESCAPES) for value in texts]
    if len(texts) == len(values):
        return texts
    filled = iter(texts)
    return [COPY_NULL if value is None else next(filled) for value in values]


# A chunk's last step in its own transaction: given the connection, e.g. move the ingest job's progress
# (campaigns.ingest.jobs). It raises to roll the chunk back.
Checkpoint = Callable[[Connection], None]


class ChunkWriter(AbstractContextManager):
    """Each chunk's rows and its checkpoint in one transaction, by a thread of their own.

    The thread writes while the caller prepares the next chunk, so reading and checking the file (this
    process) and inserting (the database) run at the same time, on two cores. At most `QUEUED_CHUNKS`
    prepared chunks wait, which keeps memory bounded. A chunk is in the database, with its checkpoint, or
    not at all: an ingest stopped anywhere resumes after the last chunk committed.
    """

    QUEUED_CHUNKS = 1

    def __init__(self, engine: Engine, campaign_id: int, *, timed: bool = False):
        self.engine = engine
        self.campaign_id = campaign_id
        self.timed = timed
        self._queue: queue.Queue = queue.Queue(maxsize=self.QUEUED_CHUNKS)
        self._failure: BaseException | None = None

    def __enter__(self):
        self.connection = self.engine.connect()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._failure is not None:
                continue  # drain; the caller sees the failure on its next write or at the end
            payload, rows, checkpoint = item
            try:
                with self.connection.begin():
                    stored = self._store(payload)
                    if stored != rows:  # the database's own count of what it took
                        raise RuntimeError(f"the database took {stored} of a chunk's {rows} rows")
                    if checkpoint is not None:
                        checkpoint(self.connection)
            except BaseException as failure:  # handed to the caller's thread
                self._failure = failure

    def write(self, chunk: pd.DataFrame, bodies: np.ndarray, variables: list[str],
              checkpoint: Checkpoint | None = None) -> None:
        if self._failure is not None:
            raise self._failure
        self._queue.put((self._prepare(chunk, bodies, variables), len(chunk), checkpoint))

    def _prepare(self, chunk: pd.DataFrame, bodies: np.ndarray, variables: list[str]):
        raise NotImplementedError

    def _store(self, payload) -> int:
        """Write the rows; returns how many the database says it took."""
        raise NotImplementedError

    def __exit__(self, kind, error, traceback):
        self._queue.put(None)
        self._thread.join()
        self.connection.close()
        if kind is None and self._failure is not None:
            raise self._failure
        return False


class PostgresCopyWriter(ChunkWriter):
    """COPY ... FROM STDIN in the text format, one per chunk. Text, not CSV: a value needs no quotes, so the
    usual column goes out as it is (CSV doubled every quote of each row's variables JSON); binary COPY
    measured no faster on the server, and psycopg builds it row by row in Python."""

    def __init__(self, engine: Engine, campaign_id: int, *, timed: bool = False):
        super().__init__(engine, campaign_id, timed=timed)
        # attempts, created_at and updated_at are left to their server defaults: less to format and parse.
        columns = [column for column in _columns(timed) if column not in SERVER_DEFAULTS]
        self.statement = f"COPY message ({', '.join(columns)}) FROM STDIN"

    def _prepare(self, chunk: pd.DataFrame, bodies: np.ndarray, variables: list[str]) -> str:
        numbers, phones, raw, variables, bodies, states, reasons = _rows(chunk, bodies, variables)
        head = f"{self.campaign_id}\t"
        if self.timed:
            send_at, zones, keys = _timing(chunk)
            tail = [f"\t{_copy_time(moment)}\t{zone}\t{key}\n"
                    for moment, zone, key in zip(send_at, _copy_texts(zones), _copy_texts(keys), strict=True)]
        else:
            tail = ["\n"] * len(numbers)
        return "".join([
            f"{head}{number}\t{phone}\t{raw_text}\t{variables_text}\t{body}\t{state}\t{reason}{row_tail}"
            for number, phone, raw_text, variables_text, body, state, reason, row_tail in zip(
                numbers, _copy_texts(phones), _copy_texts(raw), _copy_texts(variables), _copy_texts(bodies), states,
                _copy_texts(reasons), tail, strict=True)
        ])

    def _store(self, payload: str) -> int:
        cursor = self.connection.connection.driver_connection.cursor()
        try:
            with cursor.copy(self.statement) as copy:
                for start in range(0, len(payload), COPY_BLOCK_CHARS):
                    copy.write(payload[start:start + COPY_BLOCK_CHARS])
            return cursor.rowcount
        finally:
            cursor.close()


class SqliteWriter(ChunkWriter):
    """executemany, one transaction per chunk (so other writers wait a chunk, not the whole file). sqlite3
    lets go of the GIL while SQLite works."""

    def __init__(self, engine: Engine, campaign_id: int, *, timed: bool = False):
        super().__init__(engine, campaign_id, timed=timed)
        processor = Message.__table__.c.created_at.type.bind_processor(engine.dialect)
        self.time_processor = processor or (lambda moment: moment)
        self.now = self.time_processor(utcnow())
        columns = _columns(timed)
        self.statement = f"INSERT INTO message ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"

    def _prepare(self, chunk: pd.DataFrame, bodies: np.ndarray, variables: list[str]) -> list[tuple]:
        numbers, phones, raw, variables, bodies, states, reasons = _rows(chunk, bodies, variables)
        size = len(numbers)
        extra = []
        if self.timed:
            send_at, zones, keys = _timing(chunk)
            extra = [[None if moment is None else self.time_processor(moment) for moment in send_at], zones, keys]
        return list(zip(repeat(self.campaign_id, size), numbers, phones, raw, variables, bodies,
                        states, reasons, repeat(0, size), repeat(self.now, size),
                        repeat(self.now, size), *extra, strict=True))

    def _store(self, payload: list[tuple]) -> int:
        return self.connection.exec_driver_sql(self.statement, payload).rowcount


def writer_for(engine: Engine, campaign_id: int, *, timed: bool = False) -> ChunkWriter:
    """`timed`: the chunks carry per-row times (campaigns.ingest.timing) to write as well."""
    if engine.dialect.name == "postgresql":
        return PostgresCopyWriter(engine, campaign_id, timed=timed)
    return SqliteWriter(engine, campaign_id, timed=timed)
