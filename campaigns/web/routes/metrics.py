"""/metrics for Prometheus: no login, only for the hosts in BLAST_METRICS_ALLOW."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from campaigns.web import metrics

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics_page(request: Request):
    if not metrics.allowed(request.client.host if request.client else None):
        return PlainTextResponse("metrics are open only to the hosts in BLAST_METRICS_ALLOW\n", status_code=403)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
