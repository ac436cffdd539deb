"""The HTTP API, `/api/v1` (DESIGN.md "The HTTP API"): a FastAPI application of its own, mounted in the web
app, with its OpenAPI document at `/api/v1/openapi.json` and a docs page drawn from it at `/api/v1/docs`.

Every request carries `Authorization: Bearer <key>` (campaigns.apikeys); every error is
`application/problem+json` (RFC 9457: `type`, `title`, `status`, `detail`); every POST may carry an
`Idempotency-Key` (campaigns.web.api.idempotency). The routes call the same lifecycle functions as the command
line and the pages: nothing here decides what a campaign does.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from campaigns.web.api.problems import ANSWERED, MEDIA_TYPE, answer_for, problem

DESCRIPTION = """Campaigns and their messages, reminder schedules, opt-outs, accounts and API keys, for the systems
that send reminders.

Authenticate with `Authorization: Bearer <key>` (`blast apikey create --name N --role viewer|operator|admin`).
Errors are `application/problem+json`. Repeat a POST safely with the same `Idempotency-Key` header. Each key
may make BLAST_API_RATE_PER_KEY requests a second (default 20); past it, 429 with `Retry-After`."""


async def _answer(_request: Request, error: Exception):
    status, content, headers = answer_for(error)
    return JSONResponse(content, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _with_request_bodies(api: FastAPI) -> None:
    """The document gains the bodies a route reads itself (POST /campaigns takes JSON or multipart)."""
    from campaigns.web.api import schemas

    build = api.openapi

    def openapi() -> dict:
        if api.openapi_schema is None:
            document = build()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for model in (schemas.CampaignIn, schemas.CampaignFileIn):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(schema.pop("$defs", {}))
                components[model.__name__] = schema
            form = components["CampaignFileIn"]  # the file beside the fields
            form["properties"]["file"] = {"type": "string", "format": "binary", "description": "a .csv or .xlsx"}
            form["required"] = [*form.get("required", []), "file"]
        return api.openapi_schema

    api.openapi = openapi


def create_api() -> FastAPI:
    from campaigns.web.api import accounts, campaigns, docs, keys, optouts, schedules

    api = FastAPI(title="Blast API", version="1", description=DESCRIPTION, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    for module in (campaigns, schedules, optouts, accounts, keys):
        api.include_router(module.router)
    api.add_api_route("/docs", lambda: docs.render(api), include_in_schema=False)
    _with_request_bodies(api)

    for kind in ANSWERED:
        api.add_exception_handler(kind, _answer)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return problem(422, "Invalid request", f"{where}: {first.get('msg', 'invalid')}")

    @api.exception_handler(HTTPException)
    async def _http(_request: Request, error: HTTPException):
        return problem(error.status_code, str(error.detail), str(error.detail), headers=error.headers)

    return api
