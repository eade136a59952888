"""The operators' web console, served by `loaxa province serve` beside the API.

Server-rendered pages (Jinja2) with htmx for the live parts; no build step,
every asset in `static/`. Each module named in `PAGE_MODULES` exposes
`routes(console)`; `mount` adds them, the static files, compression and the
security headers to the API's Starlette application.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loaxa.province.server import api

log = logging.getLogger(__name__)

PAGE_MODULES: tuple[str, ...] = (
    "loaxa.province.console.auth_pages",
    "loaxa.province.console.admin",
    "loaxa.province.console.compose",
    "loaxa.province.console.vetting",
    # previews, uploads and /media, CAP import
    "loaxa.province.console.preview",
    "loaxa.province.console.media",
    "loaxa.province.console.cap_import",
    # watching bulletins, the fleet and its map, reports, the stations' metadata
    "loaxa.province.console.watch",
    "loaxa.province.console.fleet",
    "loaxa.province.console.reports",
    "loaxa.province.console.stations_admin",
)

# Scripts only from this server, and no inline script (htmx's settings are in static/console.js);
# style attributes are allowed (bars and widths computed by the server), <style> elements are not.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-elem 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self' data:; media-src 'self' blob:{media}; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


def headers(media_url: str | None) -> list[tuple[bytes, bytes]]:
    """The security headers; recordings may also play from `console.media_url`'s origin (a separate media host)."""
    parts = urlsplit(media_url or "")
    origin = f" {parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""
    return [
        (b"content-security-policy", CSP.format(media=origin).encode()),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"x-content-type-options", b"nosniff"),
    ]


def mount(app: Starlette, ctx: api.Context) -> None:
    from loaxa.province.console.web import STATIC, Console

    console = Console(ctx)
    for name in PAGE_MODULES:
        module = importlib.import_module(name)
        app.router.routes.extend(module.routes(console))
    app.router.routes.append(Mount("/static", app=CachedStatic(directory=str(STATIC)), name="static"))
    app.exception_handlers[404] = _not_found(console)
    app.add_middleware(SecurityHeaders, headers=headers(ctx.settings.console.media_url))
    app.add_middleware(Compressed)
    app.state.console = console
    log.debug("console mounted: %s", ", ".join(PAGE_MODULES))


def _not_found(console: Any) -> Any:
    """A console page for an unknown address (with the nav when logged in); the API's stays JSON."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from loaxa.province.console.web import N_

    async def handler(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/") or request.url.path.startswith("/static/"):
            return JSONResponse({"error": "not found"}, status_code=404)
        found = await run_in_threadpool(console.session_of, request)
        if found is not None:
            request.state.user, request.state.csrf = found
        return console.error(request, 404, N_("There is no such page."))

    return handler


class CachedStatic(StaticFiles):
    """Static files; a versioned URL (`?v=` from `static()`, or a vendored file's name) is cached for a year."""

    async def get_response(self, path: str, scope: Scope) -> Any:
        response = await super().get_response(path, scope)
        versioned = b"v=" in scope.get("query_string", b"") or path.startswith("vendor/")
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if versioned else "no-cache"
        return response


class SecurityHeaders:
    """CSP, no framing, no referrer to other sites, no type sniffing: on every answer."""

    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.headers if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, with_headers)


class Compressed:
    """gzip for pages (a district office's 4G link), never for a server-sent event stream.

    An EventSource asks with `Accept: text/event-stream`; such a request bypasses
    the compressor, which would otherwise hold events back until its buffer fills.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=512)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            accept = dict(scope.get("headers", [])).get(b"accept", b"")
            if b"text/event-stream" not in accept:
                await self.gzip(scope, receive, send)
                return
        await self.app(scope, receive, send)
