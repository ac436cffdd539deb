"""The admin pages: the users who log in (campaigns.users) and the API keys (campaigns.apikeys).

Only admins see or post to them (403 for other roles). A new key is shown once, in the answer to the form
that made it (never in a URL, never again); passwords are typed into forms and never shown back.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from campaigns import apikeys, users
from campaigns.db import get_engine
from campaigns.errors import BlastError, NotFound
from campaigns.web.rendering import Admin, page, posted_form

router = APIRouter()


def _users_page(request: Request, *, status_code: int = 200, error: str | None = None):
    return page(request, "users.html", status_code=status_code, users=users.listing(get_engine()),
                roles=apikeys.ROLES, notice=request.query_params.get("notice"), error=error)


@router.get("/users")
def users_page(request: Request, user: Admin):
    return _users_page(request)


@router.post("/users")
async def add_user(request: Request, user: Admin):
    form = await posted_form(request)
    try:
        await run_in_threadpool(users.add, get_engine(), form.get("name", ""), form.get("role", ""),
                                form.get("password", ""))
    except BlastError as error:
        return _users_page(request, status_code=400, error=str(error))
    return RedirectResponse("/users?notice=added", status_code=303)


@router.post("/users/{name:path}/remove")
async def remove_user(request: Request, name: str, user: Admin):
    await posted_form(request)
    try:
        await run_in_threadpool(users.remove, get_engine(), name)
    except NotFound as error:
        return _users_page(request, status_code=404, error=str(error))
    except BlastError as error:
        return _users_page(request, status_code=409, error=str(error))
    return RedirectResponse("/users?notice=removed", status_code=303)


@router.post("/users/{name:path}/password")
async def change_password(request: Request, name: str, user: Admin):
    form = await posted_form(request)
    try:
        await run_in_threadpool(users.set_password, get_engine(), name, form.get("password", ""))
    except NotFound as error:
        return _users_page(request, status_code=404, error=str(error))
    except BlastError as error:
        return _users_page(request, status_code=400, error=str(error))
    if name == user:  # their own: this session ended with the others
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/users?notice=password+changed", status_code=303)


def _keys_page(request: Request, *, status_code: int = 200, error: str | None = None, new_key: str | None = None,
               new_name: str | None = None):
    answer = page(request, "apikeys.html", status_code=status_code, keys=apikeys.listing(get_engine()),
                  roles=apikeys.ROLES, notice=request.query_params.get("notice"), error=error, new_key=new_key,
                  new_name=new_name)
    if new_key is not None:
        answer.headers["Cache-Control"] = "no-store"  # the key is on this answer only: keep no copy of it
    return answer


@router.get("/keys")
def keys_page(request: Request, user: Admin):
    return _keys_page(request)


@router.post("/keys")
async def create_key(request: Request, user: Admin):
    form = await posted_form(request)
    name = form.get("name", "").strip()
    try:
        key = await run_in_threadpool(apikeys.create, get_engine(), name, form.get("role", ""))
    except BlastError as error:
        return _keys_page(request, status_code=400, error=str(error))
    return _keys_page(request, status_code=201, new_key=key, new_name=name)


@router.post("/keys/{name:path}/revoke")
async def revoke_key(request: Request, name: str, user: Admin):
    await posted_form(request)
    if not await run_in_threadpool(apikeys.revoke, get_engine(), name):
        return _keys_page(request, status_code=404, error=f"no key named {name!r} that is not revoked already")
    return RedirectResponse("/keys?notice=revoked", status_code=303)
