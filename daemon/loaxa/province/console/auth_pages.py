"""Log in, log out, choose the language; `/` leads to the bulletins.

Failed logins are rows of `login_failures`, so every server instance on the
same database counts the same ones. Within a minute, at most
`console.login_attempts_per_minute` failures per user name (in any case) and
per client address; more are refused with 429 before the password is
checked. The client address is the TCP peer, or, from the local reverse
proxy that uvicorn trusts (127.0.0.1, or `FORWARDED_ALLOW_IPS`), the
address it names in X-Forwarded-For.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from loaxa.province.console import accounts
from loaxa.province.console.web import LANGUAGES, N_, PRE_COOKIE, Console, User, client_of
from loaxa.province.server import schema as t

log = logging.getLogger(__name__)

WINDOW_S = 60.0
KEEP_FAILURES_S = 3600.0
HOME = "/bulletins"


def safe_next(target: Any) -> str:
    """A path on this server to go to after a form (never another site: `//host` or `/\\host`)."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith(("//", "/\\")):
        return HOME
    return target


def too_many_failures(console: Console, name: str, client: str | None) -> bool:
    limit = console.settings.login_attempts_per_minute
    c = t.login_failures.c
    since = time.time() - WINDOW_S
    with console.ctx.db.engine.connect() as conn:
        by_name = conn.execute(select(func.count()).where(c.at > since, c.name == name)).scalar_one()
        by_client = (
            conn.execute(select(func.count()).where(c.at > since, c.client == client)).scalar_one() if client else 0
        )
    return by_name >= limit or by_client >= limit


def record_failure(console: Console, name: str, client: str | None) -> None:
    now = time.time()
    c = t.login_failures.c
    with console.ctx.db.engine.begin() as conn:
        conn.execute(t.login_failures.insert().values(at=now, name=name[:64], client=client))
        conn.execute(t.login_failures.delete().where(c.at < now - KEEP_FAILURES_S))


def routes(console: Console) -> list[BaseRoute]:
    async def home(request: Request) -> Response:
        return RedirectResponse(HOME, status_code=303)

    async def login_form(request: Request) -> Response:
        found = await run_in_threadpool(console.session_of, request)
        target = safe_next(request.query_params.get("next"))
        if found is not None:
            return RedirectResponse(target, status_code=303)
        return console.render(request, "login.html", next=target, name="")

    async def login(request: Request) -> Response:
        client = client_of(request)
        try:
            form = await console.read_form(request)
        except Exception:
            form = {}
        name = accounts.normal_name(str(form.get("name") or ""))[:64]
        password = str(form.get("password") or "")
        target = safe_next(form.get("next"))

        def again(status: int, error: str, detail: str) -> Response:
            console.audit(name or None, "POST /login", status, detail, client)
            return console.render(request, "login.html", status_code=status, next=target, name=name, error=error)

        def attempt() -> Response:
            if not console.check_csrf(request, form, request.cookies.get(PRE_COOKIE)):
                return again(
                    403, N_("The form has expired: reload the page and try again."), "missing or wrong CSRF token"
                )
            if too_many_failures(console, name, client):
                return again(429, N_("Too many failed logins: wait a minute and try again."), "rate limited")
            user = accounts.verify(console.ctx.db, name, password, console.settings.language)
            if user is None:
                record_failure(console, name, client)
                return again(401, N_("Wrong user name or password."), "wrong name or password")
            response = RedirectResponse(target, status_code=303)
            console.start_session(request, response, user)
            console.audit(user.name, "POST /login", 303, "logged in", client)
            log.info("console login: %s (%s)", user.name, user.role)
            return response

        return await run_in_threadpool(attempt)

    def logout(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        response = RedirectResponse("/login", status_code=303)
        console.end_session(request, response)
        request.state.audit_detail = "logged out"
        return response

    async def language(request: Request) -> Response:
        form = await console.read_form(request)
        lang = form.get("lang")
        target = safe_next(form.get("next"))
        client = client_of(request)

        def choose() -> Response:
            found = console.session_of(request)
            expected = found[1] if found else request.cookies.get(PRE_COOKIE)
            who = found[0].name if found else None
            if not console.check_csrf(request, form, expected):
                console.audit(who, "POST /lang", 403, "missing or wrong CSRF token", client)
                if found:
                    request.state.user, request.state.csrf = found
                return console.error(request, 403, N_("The form has expired: reload the page and try again."))
            if lang not in LANGUAGES:
                console.audit(who, "POST /lang", 400, f"unknown language {str(lang)[:8]!r}", client)
                return console.error(request, 400, N_("Unknown language."))
            if found:
                accounts.set_language(console.ctx.db, found[0].id, str(lang))
            response = RedirectResponse(target, status_code=303)
            console.set_language_cookie(request, response, str(lang))
            console.audit(who, "POST /lang", 303, f"language {lang}", client)
            return response

        return await run_in_threadpool(choose)

    return [
        Route("/", home, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", console.page("viewer")(logout), methods=["POST"]),
        Route("/lang", language, methods=["POST"]),
    ]
