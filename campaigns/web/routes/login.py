"""Logging in and out."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from campaigns.web import auth
from campaigns.web.rendering import page

router = APIRouter()


@router.get("/login")
def login_form(request: Request):
    return page(request, "login.html", error=None)


@router.post("/login")
def login(request: Request, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
          csrf_token: Annotated[str, Form()] = ""):
    auth.check_csrf(request, csrf_token)
    try:
        account = auth.attempt_login(request, username, password)
    except auth.LoginThrottled as refusal:
        minutes = math.ceil(refusal.retry_after_seconds / 60)
        error = (f"Too many failed logins for this user or from this address. Try again in {minutes} "
                 f"minute{'s' if minutes != 1 else ''}.")
        answer = page(request, "login.html", status_code=429, error=error)
        answer.headers["Retry-After"] = str(refusal.retry_after_seconds)
        return answer
    if account is None:
        return page(request, "login.html", status_code=401, error="Wrong user name or password.")
    auth.log_in(request, account)
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = ""):
    auth.check_csrf(request, csrf_token)
    auth.log_out(request)
    return RedirectResponse("/login", status_code=303)
