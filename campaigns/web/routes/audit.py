"""The audit page: who changed what, on which object, when and from where (campaigns.audit), newest first.

Admins and operators read it (the people who change things see who else did); viewers do not: it names
colleagues and their addresses, which reading campaigns does not need. Nothing here changes an entry.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from campaigns import audit
from campaigns.db import get_engine
from campaigns.web.rendering import Operator, page

router = APIRouter()
SHOWN = 200


@router.get("/audit")
def audit_page(request: Request, user: Operator, limit: int = Query(SHOWN, ge=1, le=10_000)):
    return page(request, "audit.html", entries=audit.listing(get_engine(), limit), limit=limit)
