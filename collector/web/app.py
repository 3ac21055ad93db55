"""The collector's web application: the API, the board's pages, /metrics and /healthz.

    build_app(...)  → the FastAPI app collector/api.py serves (wrapped in its Guard)

Routes:

    /api/v1/...                  the API (collector/web/api_routes.py), by role
    /api/v1/throughput           the agents' throughput test (no token)
    /api/v1/openapi.json         the API's OpenAPI document (from the pydantic models)
    POST /login, POST /logout    the board's session cookie, from a token
    /metrics, /healthz           for Prometheus and probes (no token: no site data)
    /static/...                  the board's assets (collector/web/static/)

Pages are added as routers (``app.include_router``); templates are found in
collector/web/templates/ through ``app.state.templates`` (Jinja2, autoescaped).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException

from collector.api_json import api_json
from collector.endpoints import Endpoints
from collector.supervision import Loop
from collector.web.access import Access, Refused
from collector.web.api_routes import router as api_router
from collector.web.models import ErrorAnswer, WhoAmI
from collector.web.redirects import MAX_NEXT, local_path
from collector.web.throughput_routes import throughput_router
from collector.web.workers import Workers

__all__ = ["STATIC", "TEMPLATES", "HealthBody", "build_app"]

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

HealthBody = Callable[[], tuple[bool, dict[str, Any]]]
"""(healthy, the body /healthz answers)."""

_LOGIN_FAILED = "this token is not one this collector knows / mã truy cập không đúng"


def build_app(
    *,
    endpoints: Endpoints,
    access: Access,
    health: HealthBody,
    registry: CollectorRegistry,
    loop: Loop,
    threads: int = 8,
) -> FastAPI:
    app = FastAPI(
        title="kienco collector",
        summary="Which places will hold in a disaster: verdicts, meetings, risk levels.",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI needs a CDN and inline script: neither here
        redoc_url=None,
    )
    app.state.endpoints = endpoints
    app.state.access = access
    app.state.workers = Workers(loop, threads=threads)
    app.state.templates = Jinja2Templates(directory=TEMPLATES)
    _errors_as_json(app)
    app.include_router(api_router)
    app.include_router(throughput_router())

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        """200 when all is well, else 503 and what is wrong (no token needed)."""
        ok, body = health()
        return Response(api_json(body), 200 if ok else 503, media_type="application/json")

    @app.post(
        "/login", tags=["board"], responses={200: {"model": WhoAmI}, 403: {"model": ErrorAnswer}}
    )
    async def login(
        request: Request,
        token: Annotated[str, Form(max_length=1000)],
        next: Annotated[str | None, Form(max_length=MAX_NEXT)] = None,
    ) -> Response:
        """Open a board session with a token: sets the HttpOnly, SameSite=Strict cookie.

        With ``next`` (a path on this server) the answer is a redirect there (a form's
        submit; a wrong token goes back to the board's form, which says so); without,
        who logged in, as JSON.
        """
        opened = await access.open_session(request, token)
        target = local_path(next)
        if opened is None:
            if target:
                again = f"/login?failed=1&next={quote(target, safe='')}"
                return RedirectResponse(again, status_code=303)
            raise Refused(403, _LOGIN_FAILED)
        who, session_id = opened
        answer: Response = (
            RedirectResponse(target, status_code=303) if target else JSONResponse(who.as_json())
        )
        access.set_cookie(request, answer, session_id)
        return answer

    @app.post("/logout", tags=["board"], status_code=204)
    async def logout(request: Request) -> Response:
        """End this browser's session (from the board's own pages only)."""
        answer = Response(status_code=204)
        access.logout(request, answer)
        return answer

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _errors_as_json(app: FastAPI) -> None:
    """Every refusal and error as ``{"error": ...}``, as the API always answered."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no such path: {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        # Counted by the Guard (collector/web/guard.py) when it comes through.
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"[:500]}, status_code=500)
