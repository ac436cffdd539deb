"""What every page shares: the templates, `page()`, the logged-in user, the one-time notes kept in the
session, and a posted form checked against CSRF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from campaigns.settings import get_settings
from campaigns.web import auth

HERE = Path(__file__).parent
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True))



def duration(seconds: float) -> str:
    """Seconds as a person reads them: "40 s", "3 min 20 s", "2 h 5 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


TEMPLATES.filters["duration"] = duration

TRIAL_FLASH = "trial_send"  # session key: the last test send's verdict, shown once on the compose page
SCHEDULE_FLASH = "schedule_error"  # session key: why the last reminder schedule was refused

# A route's logged-in user (any role may read), and the roles that may change things (campaigns.apikeys.ROLES).
User = Annotated[str, Depends(auth.require_user)]
Operator = Annotated[str, Depends(auth.require_role("operator"))]
Admin = Annotated[str, Depends(auth.require_role("admin"))]


def page(request: Request, template_file: str, status_code: int = 200, **context) -> HTMLResponse:
    settings = get_settings()
    html = TEMPLATES.get_template(template_file).render(
        user=auth.current_user(request), role=auth.current_role(request), csrf_token=auth.csrf_token(request),
        may_operate=auth.may(request, "operator"), may_administer=auth.may(request, "admin"),
        flower_url=settings.flower_url, **context)
    return HTMLResponse(html, status_code=status_code)


async def posted_form(request: Request) -> dict[str, str]:
    form = await request.form()
    auth.check_csrf(request, str(form.get(auth.CSRF_FIELD) or ""))
    return {key: str(value) for key, value in form.items() if isinstance(value, str)}


def compose_url(token: str, values: dict[str, str], **more: str) -> str:
    """The compose page again, with the operator's fields as they were."""
    shown = {key: value for key, value in {**values, **more}.items() if value and key != auth.CSRF_FIELD}
    return f"/uploads/{token}?{urlencode(shown)}#{'test-send' if 'test_phone' in more else 'compose'}"
