"""The FastAPI application: webhooks (no login, token-checked) and the operator pages."""

from __future__ import annotations

from fastapi import FastAPI

from campaigns.web.security_headers import SecurityHeaders


class BlastApp(FastAPI):
    """FastAPI with the security headers outside its whole middleware stack: even the 500 page that
    Starlette's outermost error middleware writes carries them (app.add_middleware would sit inside it)."""

    def build_middleware_stack(self):
        return SecurityHeaders(super().build_middleware_stack())


def create_app() -> FastAPI:
    from campaigns.web import compose_pages, hooks, pages

    app = BlastApp(title="Blast", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(hooks.router)
    app.include_router(pages.router)
    app.include_router(compose_pages.router)
    pages.install(app)
    return app
