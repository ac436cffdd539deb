"""Errors as `application/problem+json` (RFC 9457)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from campaigns.errors import BlastError, Conflict, NotFound
from campaigns.settings import ConfigError

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error answer: `status`, a short `title` and a `detail` for the person reading it."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body(status, title, detail), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def body(status: int, title: str, detail: str) -> dict:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


# What an operator's error is, as an answer: the most specific class first (BlastError is the others' base).
ERROR_ANSWERS = ((NotFound, 404, "Not found"), (Conflict, 409, "Conflict"), (BlastError, 400, "Refused"),
                 (ConfigError, 400, "Refused"))
ANSWERED = (Problem, NotFound, Conflict, BlastError, ConfigError)  # the errors `answer_for` turns into answers


def answer_for(error: Exception) -> tuple[int, dict, dict[str, str] | None]:
    """(status, problem body, headers) for a Problem or an operator's error (ANSWERED)."""
    if isinstance(error, Problem):
        return error.status, body(error.status, error.title, error.detail), error.headers
    status, title = next((status, title) for kind, status, title in ERROR_ANSWERS if isinstance(error, kind))
    return status, body(status, title, str(error)), None


# The error answers each route may give, for the OpenAPI document.
PROBLEM_SCHEMA = {"content": {MEDIA_TYPE: {"schema": {"type": "object", "required": ["title", "status", "detail"],
                                                      "properties": {"type": {"type": "string"},
                                                                     "title": {"type": "string"},
                                                                     "status": {"type": "integer"},
                                                                     "detail": {"type": "string"}}}}}}


def answers(*statuses: int) -> dict:
    """The error answers of a route; one that takes a key (401) may also be over the key's rate (429)."""
    statuses = (*statuses, 429) if 401 in statuses else statuses
    return {status: {"description": DESCRIPTIONS[status], **PROBLEM_SCHEMA} for status in statuses}


DESCRIPTIONS = {400: "Refused (the detail says why)", 401: "No key, or a key that is wrong or revoked",
                403: "The key's role may not do this", 404: "No such object",
                409: "Not now (the campaign's status), or an Idempotency-Key used with another body",
                413: "The file is over the upload limit", 415: "Not a .csv or .xlsx file",
                422: "A field is missing or invalid",
                429: "Over the key's request rate (BLAST_API_RATE_PER_KEY): retry after Retry-After seconds"}
