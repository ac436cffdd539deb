"""The FastAPI application: webhooks (no login, token-checked) and the operator pages."""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    from campaigns.web import compose_pages, hooks, pages

    app = FastAPI(title="Blast", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(hooks.router)
    app.include_router(pages.router)
    app.include_router(compose_pages.router)
    pages.install(app)
    return app
