"""What every console page shares: the logged-in user, roles, CSRF, templates, languages, the audit log.

A page module exposes `routes(console)` and wraps each handler in
`console.page(role)`: the handler is plain synchronous code run in the
thread pool, called only for a logged-in user with at least `role`, and,
for a request that changes something (any method but GET and HEAD), only
with the session's CSRF token (form field `csrf` or header `X-CSRF-Token`).
Every such request, answered or refused, is written to the audit log.

The session cookie holds a random token; the database keeps its SHA-256
only, with the session's CSRF token and expiry. Before a login, forms carry
the token of a `loaxa_csrf` cookie instead (the login form itself).
"""

from __future__ import annotations

import gettext
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from loaxa import i18n
from loaxa.province.console import forms
from loaxa.province.console.accounts import N_, ROLES, User
from loaxa.province.server import api, tokens
from loaxa.province.server import schema as t

log = logging.getLogger(__name__)

__all__ = ["ROLES", "Console", "Handler", "N_", "User", "routes", "translations", "values"]

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
COOKIE = "loaxa_session"
PRE_COOKIE = "loaxa_csrf"  # the CSRF token of forms shown before a login
LANG_COOKIE = "loaxa_lang"
LANGUAGES = ("vi", "en")
SAFE = ("GET", "HEAD", "OPTIONS")

ROLE_WORDS = (N_("viewer"), N_("editor"), N_("approver"), N_("admin"))  # as the pages name them, translated
Handler = Callable[[Request, User, "dict[str, Any] | None"], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


@lru_cache(maxsize=len(LANGUAGES))
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog of one language, read once per process (the CLI's `i18n.use` stays untouched)."""
    return i18n.translations(lang)


def values(form: dict[str, Any] | None, name: str) -> list[Any]:
    """Every value of a form field: a field sent once is a plain value in `form`, one sent more often a list."""
    value = (form or {}).get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str  # English; translated in the template
    role: str


NAV = (
    NavItem("/bulletins", "Bulletins", "viewer"),
    NavItem("/compose", "Compose", "editor"),
    NavItem("/drafts", "Drafts", "editor"),
    NavItem("/fleet", "Fleet", "viewer"),
    NavItem("/reports", "Reports", "viewer"),
    NavItem("/admin", "Admin", "admin"),
)


class Console:
    def __init__(self, ctx: api.Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings.console
        self.env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        zone = ZoneInfo(ctx.settings.province.timezone)
        self.env.filters["when"] = lambda epoch: _when(epoch, zone)
        self.env.filters["clip"] = clip
        self._static_versions: dict[str, str] = {}

    # -- languages ------------------------------------------------------------------
    def gettext(self, lang: str) -> Callable[[str], str]:
        return translations(lang if lang in LANGUAGES else self.settings.language).gettext

    def language(self, request: Request) -> str:
        user: User | None = getattr(request.state, "user", None)
        if user is not None:
            return user.language
        chosen = request.cookies.get(LANG_COOKIE)
        return chosen if chosen in LANGUAGES else self.settings.language

    # -- sessions -------------------------------------------------------------------
    def session_of(self, request: Request) -> tuple[User, str] | None:
        """The logged-in user and the session's CSRF token; None without a live session."""
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        u, s = t.users.c, t.sessions.c
        with self.ctx.db.engine.connect() as conn:
            row = conn.execute(
                select(u.id, u.name, u.role, u.language, s.csrf)
                .select_from(t.sessions.join(t.users, u.id == s.user_id))
                .where(s.id == digest(token), s.expires_at > time.time(), u.disabled_at.is_(None))
            ).first()
        if row is None:
            return None
        chosen = request.cookies.get(LANG_COOKIE)  # picked on the login page, before the user chose for good
        language = row.language or (chosen if chosen in LANGUAGES else self.settings.language)
        return User(row.id, row.name, row.role, language), row.csrf

    def start_session(self, request: Request, response: Response, user: User) -> None:
        """A new session for `user`, its cookie set on `response` (any session the browser had ends)."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + self.settings.session_hours * 3600
        with self.ctx.db.engine.begin() as conn:
            old = request.cookies.get(COOKIE)
            if old:
                conn.execute(t.sessions.delete().where(t.sessions.c.id == digest(old)))
            conn.execute(t.sessions.delete().where(t.sessions.c.expires_at < now))  # tidy as we go
            conn.execute(
                t.sessions.insert().values(
                    id=digest(token),
                    user_id=user.id,
                    csrf=secrets.token_urlsafe(32),
                    created_at=now,
                    expires_at=expires,
                    client=client_of(request),
                )
            )
        self._cookie(request, response, COOKIE, token, max_age=int(self.settings.session_hours * 3600))

    def end_session(self, request: Request, response: Response) -> None:
        token = request.cookies.get(COOKIE)
        if token:
            with self.ctx.db.engine.begin() as conn:
                conn.execute(t.sessions.delete().where(t.sessions.c.id == digest(token)))
        response.delete_cookie(COOKIE, path="/", secure=self.secure(request), httponly=True, samesite="lax")

    def secure(self, request: Request) -> bool:
        """Whether cookies get the Secure flag: per `console.secure_cookies`, else when the browser used TLS.

        X-Forwarded-Proto is believed from anyone: all a forged `https` can do is
        make a cookie Secure, which a browser on plain HTTP then never sends back.
        """
        if self.settings.secure_cookies is not None:
            return self.settings.secure_cookies
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return request.url.scheme == "https" or forwarded == "https"

    def _cookie(self, request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", secure=self.secure(request), httponly=True, samesite="lax"
        )

    def set_language_cookie(self, request: Request, response: Response, lang: str) -> None:
        self._cookie(request, response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)

    def pre_csrf(self, request: Request) -> str:
        """The CSRF token for forms shown before a login (from its cookie, or a new one `render` sets)."""
        token = getattr(request.state, "csrf", None) or request.cookies.get(PRE_COOKIE)
        if not token:
            token = secrets.token_urlsafe(32)
            request.state.new_pre_csrf = token
        request.state.csrf = token
        return token

    def check_csrf(self, request: Request, form: dict[str, Any] | None, expected: str | None) -> bool:
        given = (form or {}).get("csrf") or request.headers.get("x-csrf-token") or ""
        if isinstance(given, list):
            given = given[0]
        if not expected or not isinstance(given, str):
            return False
        return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))

    # -- pages ----------------------------------------------------------------------
    def static(self, path: str) -> str:
        """The URL of a static file, with a version from its content so it can be cached for a year."""
        version = self._static_versions.get(path)
        if version is None:
            try:
                version = hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:12]
            except OSError:
                version = "0"
            self._static_versions[path] = version
        return f"/static/{path}?v={version}"

    def render(self, request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        user: User | None = getattr(request.state, "user", None)
        lang = self.language(request)
        translate = self.gettext(lang)
        csrf = getattr(request.state, "csrf", None) if user is not None else self.pre_csrf(request)
        nav = [item for item in NAV if user is not None and user.can(item.role)]

        def csrf_field() -> Markup:
            return Markup('<input type="hidden" name="csrf" value="{}">').format(csrf or "")

        context = {
            "request": request,
            "user": user,
            "lang": lang,
            "_": translate,
            "csrf_token": csrf or "",
            "csrf_field": csrf_field,
            "nav": nav,
            "static": self.static,
            "roles": ROLES,
            "role_names": {role: translate(role) for role in ROLE_WORDS},
            **values,
        }
        html = self.env.get_template(template).render(context)
        response = HTMLResponse(html, status_code=status_code)
        response.headers["Cache-Control"] = "no-store"  # pages carry the CSRF token and the user's data
        new = getattr(request.state, "new_pre_csrf", None)
        if new:
            self._cookie(request, response, PRE_COOKIE, new, max_age=None)
        return response

    def error(self, request: Request, status: int, message: str) -> Response:
        text = self.gettext(self.language(request))(message)
        if wants_json(request):
            return JSONResponse({"error": text}, status_code=status)
        if wants_fragment(request):
            return PlainTextResponse(text, status_code=status)
        return self.render(request, "error.html", status_code=status, status=status, message=message)

    def page(self, role: str) -> Callable[[Handler], Endpoint]:
        """Wrap a handler: login, role, CSRF, form parsing, thread pool, audit log."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")

        def wrap(handler: Handler) -> Endpoint:
            async def endpoint(request: Request) -> Response:
                changes = request.method not in SAFE
                action = f"{request.method} {request.url.path}"
                found = await run_in_threadpool(self.session_of, request)
                if found is None:
                    if changes:
                        await run_in_threadpool(self.audit, None, action, 401, "not logged in", client_of(request))
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    if wants_fragment(request):
                        # htmx follows HX-Redirect with a full page load: back to this page after the login.
                        page = urlsplit(request.headers.get("hx-current-url", ""))
                        back = page.path + (f"?{page.query}" if page.query else "") if page.path else target
                        response = self.error(request, 401, N_("Your session has ended: log in again."))
                        if request.headers.get("hx-request") == "true":
                            response.headers["HX-Redirect"] = f"/login?next={quote(back, safe='/')}"
                        return response
                    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
                user, csrf = found
                request.state.user, request.state.csrf = user, csrf
                if not user.can(role):
                    if changes:
                        await run_in_threadpool(self.audit, user.name, action, 403, f"needs {role}", client_of(request))
                    return self.error(request, 403, N_("Your role does not allow this page."))
                form = None
                if changes:
                    try:
                        form = await self.read_form(request)
                    except HTTPException as exc:
                        await run_in_threadpool(
                            self.audit, user.name, action, exc.status_code, exc.detail, client_of(request)
                        )
                        return self.error(request, exc.status_code, N_("The form could not be read."))
                    if not self.check_csrf(request, form, csrf):
                        await run_in_threadpool(
                            self.audit, user.name, action, 403, "missing or wrong CSRF token", client_of(request)
                        )
                        return self.error(request, 403, N_("The form has expired: reload the page and try again."))
                try:
                    response = await run_in_threadpool(handler, request, user, form)
                except HTTPException as exc:
                    if changes:
                        await run_in_threadpool(
                            self.audit, user.name, action, exc.status_code, exc.detail, client_of(request)
                        )
                    return self.error(request, exc.status_code, exc.detail)
                except Exception:
                    if changes:
                        await run_in_threadpool(self.audit, user.name, action, 500, "server error", client_of(request))
                    raise
                if changes:
                    detail = getattr(request.state, "audit_detail", None)  # what the handler says it did
                    await run_in_threadpool(
                        self.audit, user.name, action, response.status_code, detail, client_of(request)
                    )
                return response

            # No docstring on the endpoint: the API's /openapi.json reads docstrings as YAML.
            endpoint.__name__ = getattr(handler, "__name__", "endpoint")
            return endpoint

        return wrap

    async def read_form(self, request: Request) -> dict[str, Any]:
        """The fields of a form (urlencoded, multipart with files read into bytes) or of a JSON object."""
        return await forms.read(request, self.settings.upload_max_mb * 1024 * 1024 + forms.SLACK)

    # -- audit ------------------------------------------------------------------------
    def audit(
        self, user: str | None, action: str, status: int, detail: str | None = None, client: str | None = None
    ) -> None:
        """One line of the audit log; `action` is "METHOD /path" (or a word, kept as the path of a CONSOLE line)."""
        method, _, path = action.partition(" ")
        if not path or not method.isupper() or len(method) > 8:
            method, path = "CONSOLE", action
        tokens.audit(
            self.ctx.db, token=None, user=user, method=method, path=path, status=status, client=client, detail=detail
        )


def client_of(request: Request) -> str | None:
    return request.client.host[:64] if request.client else None


def wants_fragment(request: Request) -> bool:
    """An htmx or JSON request gets a status and a short text (JSON: `{"error": ...}`), not a page or a redirect."""
    return request.headers.get("hx-request") == "true" or wants_json(request)


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def clip(text: Any, limit: int = 300) -> str:
    """A text a station sent, cut for a page (a station may send a megabyte of detail)."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(epoch: float | None, zone: ZoneInfo) -> str:
    """An epoch as the province's wall-clock time (templates: `{{ row.at | when }}`)."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M")


def routes(console: Console) -> list[BaseRoute]:
    """web.py serves no pages of its own; see auth_pages and admin."""
    return []


def json_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
