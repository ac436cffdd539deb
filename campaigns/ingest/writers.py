"""Bulk writing of ingested message rows: COPY on Postgres, executemany on SQLite.

Both take the chunks of `campaigns.ingest` with each row's rendered text and variables (JSON text) and
write every row: `pending` when its skip reason is None, else `skipped` with the reason. Chunks with
per-row times (`campaigns.ingest.timing`) also fill `send_at`, `timezone` and `dedupe_key`.
"""

from __future__ import annotations

import queue
import threading
from contextlib import AbstractContextManager
from datetime import datetime
from itertools import repeat

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from campaigns.ingest.timing import KEY, SEND_AT, ZONE
from campaigns.models import Message, utcnow
from campaigns.states import MessageState

COLUMNS = ("campaign_id", "row_number", "phone", "raw_phone", "variables", "body", "state", "skip_reason",
           "attempts", "created_at", "updated_at")
# Chunk column -> message column, written when the chunk has them.
TIMING_COLUMNS = ((SEND_AT, "send_at"), (ZONE, "timezone"), (KEY, "dedupe_key"))
RAW_PHONE_WIDTH = 64  # message.raw_phone is VARCHAR(64): longer cells are cut (the rest is no number)
REASON_WIDTH = 200  # message.skip_reason


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
    return "" if value is None else value.isoformat(sep=" ")


def _quoted(values):
    """CSV fields, always quoted (an unquoted empty field is NULL to COPY), None left empty."""
    return ["" if value is None else '"' + value.replace('"', '""') + '"' for value in values]


class PostgresCopyWriter(AbstractContextManager):
    """All rows in one COPY ... FROM STDIN (FORMAT csv), committed at the end (or not at all).

    A thread feeds the COPY while the caller prepares the next chunk, so reading and checking the file
    (this process) and inserting and indexing (the Postgres backend) run at the same time, on two cores.
    Rows go out in slices of `SLICE_ROWS`; at most `QUEUED_SLICES` wait, which keeps memory bounded.
    """

    SLICE_ROWS = 10_000
    QUEUED_SLICES = 4

    def __init__(self, engine: Engine, campaign_id: int, *, timed: bool = False):
        self.engine = engine
        self.campaign_id = campaign_id
        self.timed = timed
        self.now = utcnow().isoformat(sep=" ")
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=self.QUEUED_SLICES)
        self._failure: BaseException | None = None

    def __enter__(self):
        self.raw = self.engine.raw_connection()
        try:
            self.cursor = self.raw.driver_connection.cursor()
            self._copy_context = self.cursor.copy(
                f"COPY message ({', '.join(_columns(self.timed))}) FROM STDIN (FORMAT csv)")
            self.copy = self._copy_context.__enter__()
        except BaseException:
            self.raw.close()
            raise
        self._sender = threading.Thread(target=self._send, name="copy-sender", daemon=True)
        self._sender.start()
        return self

    def _send(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._failure is not None:
                continue  # drain what is queued; the caller sees the failure on its next write
            try:
                self.copy.write(data)
            except BaseException as failure:  # handed to the caller's thread
                self._failure = failure

    def write(self, chunk: pd.DataFrame, bodies: np.ndarray, variables: list[str]) -> None:
        if self._failure is not None:
            raise self._failure
        numbers, phones, raw, variables, bodies, states, reasons = _rows(chunk, bodies, variables)
        head = f"{self.campaign_id},"
        tail = f",0,{self.now},{self.now}"
        if self.timed:
            send_at, zones, keys = _timing(chunk)
            tail = [f"{tail},{_copy_time(moment)},{zone},{key}\n"
                    for moment, zone, key in zip(send_at, _quoted(zones), _quoted(keys), strict=True)]
        else:
            tail = [tail + "\n"] * len(numbers)
        fields = (numbers, phones, _quoted(raw), _quoted(variables), _quoted(bodies), states,
                  _quoted(reasons), tail)
        for start in range(0, len(numbers), self.SLICE_ROWS):
            piece = [column[start:start + self.SLICE_ROWS] for column in fields]
            self._queue.put("".join([
                f"{head}{number},{phone or ''},{raw_text},{variables_text},{body},{state},{reason}{row_tail}"
                for number, phone, raw_text, variables_text, body, state, reason, row_tail in zip(*piece, strict=True)
            ]))

    def __exit__(self, kind, error, traceback):
        self._queue.put(None)
        self._sender.join()
        failure = self._failure
        if kind is None and failure is not None:
            kind, error, traceback = type(failure), failure, failure.__traceback__
        try:
            try:
                self._copy_context.__exit__(kind, error, traceback)
            except Exception:
                if kind is None:
                    raise
            if kind is None:
                self.raw.commit()
            else:
                self.raw.rollback()
        finally:
            self.cursor.close()
            self.raw.close()
        if failure is not None and error is failure:
            raise failure
        return False


class SqliteWriter(AbstractContextManager):
    """executemany, one transaction per chunk (so other writers wait a chunk, not the whole file).

    As for Postgres, a thread does the inserting (sqlite3 lets go of the GIL while SQLite works) while
    the caller prepares the next chunk; at most `QUEUED_CHUNKS` prepared chunks wait.
    """

    QUEUED_CHUNKS = 1

    def __init__(self, engine: Engine, campaign_id: int, *, timed: bool = False):
        self.engine = engine
        self.campaign_id = campaign_id
        self.timed = timed
        processor = Message.__table__.c.created_at.type.bind_processor(engine.dialect)
        self.time_processor = processor or (lambda moment: moment)
        self.now = self.time_processor(utcnow())
        columns = _columns(timed)
        self.statement = f"INSERT INTO message ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        self._queue: queue.Queue[list | None] = queue.Queue(maxsize=self.QUEUED_CHUNKS)
        self._failure: BaseException | None = None

    def __enter__(self):
        self.raw = self.engine.raw_connection()
        self._inserter = threading.Thread(target=self._insert, name="sqlite-inserter", daemon=True)
        self._inserter.start()
        return self

    def _insert(self) -> None:
        while (rows := self._queue.get()) is not None:
            if self._failure is not None:
                continue  # drain; the caller sees the failure on its next write or at the end
            cursor = self.raw.cursor()
            try:
                cursor.executemany(self.statement, rows)
                self.raw.commit()
            except BaseException as failure:  # handed to the caller's thread
                self.raw.rollback()
                self._failure = failure
            finally:
                cursor.close()

    def write(self, chunk: pd.DataFrame, bodies: np.ndarray, variables: list[str]) -> None:
        if self._failure is not None:
            raise self._failure
        numbers, phones, raw, variables, bodies, states, reasons = _rows(chunk, bodies, variables)
        size = len(numbers)
        extra = []
        if self.timed:
            send_at, zones, keys = _timing(chunk)
            extra = [[None if moment is None else self.time_processor(moment) for moment in send_at], zones, keys]
        self._queue.put(list(zip(repeat(self.campaign_id, size), numbers, phones, raw, variables, bodies,
                                 states, reasons, repeat(0, size), repeat(self.now, size),
                                 repeat(self.now, size), *extra, strict=True)))

    def __exit__(self, kind, error, traceback):
        self._queue.put(None)
        self._inserter.join()
        self.raw.close()
        if kind is None and self._failure is not None:
            raise self._failure
        return False


def writer_for(engine: Engine, campaign_id: int, *, timed: bool = False) -> PostgresCopyWriter | SqliteWriter:
    """`timed`: the chunks carry per-row times (campaigns.ingest.timing) to write as well."""
    if engine.dialect.name == "postgresql":
        return PostgresCopyWriter(engine, campaign_id, timed=timed)
    return SqliteWriter(engine, campaign_id, timed=timed)
