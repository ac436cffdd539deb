"""The FastAPI application: webhooks (no login, token-checked) and the operator pages."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from campaigns.web import auth, uploads
from campaigns.web.rendering import HERE
from campaigns.web.security_headers import SecurityHeaders


class BlastApp(FastAPI):
    """FastAPI with the security headers outside its whole middleware stack: even the 500 page that
    Starlette's outermost error middleware writes carries them (app.add_middleware would sit inside it)."""

    def build_middleware_stack(self):
        return SecurityHeaders(super().build_middleware_stack())


def create_app() -> FastAPI:
    from campaigns.web import hooks
    from campaigns.web.routes import ROUTERS

    app = BlastApp(title="Blast", docs_url=None, redoc_url=None, openapi_url=None)
    from campaigns.web.api import create_api

    app.include_router(hooks.router)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/api/v1", create_api())
    install(app)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException):
        """Under /api/v1 every error is problem+json, even one the mount never saw (a path it cannot match)."""
        if request.url.path.startswith("/api/v1"):
            from campaigns.web.api.problems import problem

            return problem(error.status_code, str(error.detail), str(error.detail), headers=error.headers)
        return await http_exception_handler(request, error)

    return app


def install(app) -> None:
    """Session middleware, the login/CSRF answers and the static files."""
    auth.add_session(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    uploads.maybe_sweep()  # uploads older than BLAST_UPLOAD_MAX_AGE_HOURS go when the web app starts

    @app.exception_handler(auth.LoginRequired)
    async def _login_required(request: Request, _error):
        if request.url.path.endswith(".json"):
            return JSONResponse({"error": "login required"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(auth.Forbidden)
    async def _forbidden(request: Request, error: auth.Forbidden):
        if request.url.path.endswith(".json"):
            return JSONResponse({"error": str(error)}, status_code=403)
        from campaigns.web.rendering import page

        return page(request, "error.html", status_code=403, message=f"Not allowed: {error}.")

    @app.exception_handler(auth.CsrfRejected)
    async def _csrf_rejected(request: Request, _error):
        return HTMLResponse("The form was stale or forged (CSRF token missing or wrong); reload and retry.",
                            status_code=403)

