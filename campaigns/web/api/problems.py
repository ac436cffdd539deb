"""Errors as `application/problem+json` (RFC 9457)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error answer: `status`, a short `title` and a `detail` for the person reading it."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail},
                        status_code=status, media_type=MEDIA_TYPE, headers=headers)


# The error answers each route may give, for the OpenAPI document.
PROBLEM_SCHEMA = {"content": {MEDIA_TYPE: {"schema": {"type": "object", "required": ["title", "status", "detail"],
                                                      "properties": {"type": {"type": "string"},
                                                                     "title": {"type": "string"},
                                                                     "status": {"type": "integer"},
                                                                     "detail": {"type": "string"}}}}}}


def answers(*statuses: int) -> dict:
    return {status: {"description": DESCRIPTIONS[status], **PROBLEM_SCHEMA} for status in statuses}


DESCRIPTIONS = {400: "Refused (the detail says why)", 401: "No key, or a key that is wrong or revoked",
                403: "The key's role may not do this", 404: "No such object",
                409: "Not now (the campaign's status), or an Idempotency-Key used with another body",
                413: "The file is over the upload limit", 415: "Not a .csv or .xlsx file",
                422: "A field is missing or invalid"}
