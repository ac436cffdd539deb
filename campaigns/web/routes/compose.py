"""The compose page's live preview (JSON) and a test send to one number."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse

from campaigns.errors import BlastError
from campaigns.settings import ConfigError, get_account, load_accounts
from campaigns.web import previews, trial_send, uploads
from campaigns.web.compose import compose_values
from campaigns.web.rendering import TRIAL_FLASH, Operator, compose_url, page, posted_form

MAX_TEST_ROW = 50  # the furthest recipient a test send may pick, counted among valid recipients
FLASH_TEXT_MAX = 300  # characters of a verdict's text kept in the session (a flash note, shown once)


class SafeJSONResponse(JSONResponse):
    """JSON whose text holds no `<`, `>` or `&`: a cell like `</script>` stays inert even if the body is
    ever read as HTML."""

    def render(self, content) -> bytes:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("utf-8")

router = APIRouter()


@router.post("/uploads/{token}/preview.json")
async def preview_json(request: Request, token: str, user: Operator):
    """The first recipients' texts, the length check and any problem, for the page's preview as you type.

    Form fields as the compose form's (template, account, region, phone_column, kind and extras) and
    csrf_token."""
    values = compose_values(await posted_form(request))
    try:
        upload = uploads.find_upload(token)
        accounts = load_accounts()
    except uploads.UploadRejected as error:
        return SafeJSONResponse({"error": str(error)}, status_code=error.status_code)
    except ConfigError as error:
        return SafeJSONResponse({"error": str(error)}, status_code=500)
    account = accounts.get(values["account"]) or next(iter(accounts.values()), None)
    try:
        result = await run_in_threadpool(previews.compose_preview, upload, account, values,
                                         region=values["region"] or "UG",
                                         phone_column=values["phone_column"] or None)
    except BlastError as error:  # e.g. an unknown region or phone column
        return SafeJSONResponse({"error": str(error)}, status_code=400)
    return SafeJSONResponse({"account": account.name if account else None, **result.as_dict()})


def _trial(token: str, values: dict[str, str], phone: str, row: int) -> dict:
    upload = uploads.find_upload(token)
    account = get_account(values["account"])
    to = trial_send.recipient(phone, values["region"] or "UG")
    if not 1 <= row <= MAX_TEST_ROW:
        raise trial_send.TrialProblem(f"pick a recipient from 1 to {MAX_TEST_ROW}")
    preview = previews.compose_preview(upload, account, values, region=values["region"] or "UG",
                                       phone_column=values["phone_column"] or None, rows=row)
    if preview.extras is None or preview.problem:
        raise trial_send.TrialProblem(preview.problem or "nothing to send")
    if not values["template"]:
        raise trial_send.TrialProblem("write the template first")
    if len(preview.previews) < row:
        raise trial_send.TrialProblem(f"the list has {len(preview.previews)} valid recipients, not {row}")
    chosen = preview.previews[row - 1]
    if chosen["text"] is None or chosen["skip_reason"]:
        raise trial_send.TrialProblem(f"recipient {row} would be skipped: {chosen['skip_reason']}")
    result = trial_send.send_trial(account, to=to, text=chosen["text"], extras=preview.extras)
    return {**result.as_dict(), "row": row, "text": chosen["text"]}


@router.post("/uploads/{token}/test-send")
async def test_send(request: Request, token: str, user: Operator):
    """Send recipient `test_row` (1 = the first valid one) of the preview to `test_phone`, now, through the
    account's gateway; the compose page then shows the gateway's verdict."""
    form = await posted_form(request)
    values = compose_values(form)
    try:
        row = int(form.get("test_row") or 1)
    except ValueError:
        row = 0
    try:
        verdict = await run_in_threadpool(_trial, token, values, form.get("test_phone") or "", row)
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    except (BlastError, ConfigError) as error:
        verdict = {"accepted": False, "outcome": "not sent", "code": None, "detail": str(error),
                   "to": form.get("test_phone") or "", "row": row, "text": None}
    request.session[TRIAL_FLASH] = {key: value[:FLASH_TEXT_MAX] if isinstance(value, str) else value
                                    for key, value in verdict.items()}
    more = {"test_phone": form.get("test_phone") or "", "test_row": str(row or 1)}
    return RedirectResponse(compose_url(token, values, **more), status_code=303)
