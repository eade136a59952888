"""The admin's pages: users, API tokens, the issuer key, the audit log (and its CSV export).

Each form posts to its page with an `action` field; the answer is the same
page with what was done or why not. A new API token is shown once, in that
answer. An admin cannot disable their own account or take away their own
admin role (the console would lose its last way in by a slip of the mouse).
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loaxa.errors import LoaxaError
from loaxa.province.console import accounts
from loaxa.province.console.accounts import N_, AccountError
from loaxa.province.console.web import Console, User
from loaxa.province.server import schema as t
from loaxa.province.server import tokens

log = logging.getLogger(__name__)

AUDIT_PAGE = 200
AUDIT_EXPORT = 100_000


def _text(form: dict[str, Any] | None, name: str) -> str:
    value = (form or {}).get(name)
    return value.strip() if isinstance(value, str) else ""


def audit_rows(console: Console, who: str = "", token: str = "", limit: int = AUDIT_PAGE) -> list[dict[str, Any]]:
    """The audit log newest first; `who` keeps one console user's lines, `token` one API token's."""
    c = t.audit.c
    query = select(c.id, c.at, c.user, c.token, c.method, c.path, c.status, c.client, c.detail)
    if who:
        query = query.where(c.user == accounts.normal_name(who))
    if token:
        query = query.where(c.token == token)
    with console.ctx.db.engine.connect() as conn:
        rows = conn.execute(query.order_by(c.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def routes(console: Console) -> list[BaseRoute]:
    db = console.ctx.db

    def overview(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        return console.render(request, "admin.html")

    def users_page(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        done, error, status = None, None, 200
        if form is not None:
            translate = console.gettext(console.language(request))
            try:
                done = _change_user(request, user, form)
            except AccountError as exc:
                error, status = exc.in_language(translate), 400
            except LoaxaError as exc:
                error, status = str(exc), 400
            if error:
                request.state.audit_detail = error
        return console.render(
            request, "admin_users.html", status_code=status, users=accounts.list_users(db), done=done, error=error
        )

    def _change_user(request: Request, me: User, form: dict[str, Any]) -> str:
        action, name = _text(form, "action"), accounts.normal_name(_text(form, "name"))
        translate = console.gettext(console.language(request))
        if action == "add":
            accounts.add_user(db, name, _text(form, "role"), str(form.get("password") or ""))
            request.state.audit_detail = f"added user {name} ({_text(form, 'role')})"
            return translate(N_("User {name} added.")).format(name=name)
        if name == me.name and (action == "disable" or (action == "role" and _text(form, "role") != "admin")):
            raise AccountError(N_("you cannot disable yourself or take away your own admin role"))
        if action == "role":
            accounts.set_role(db, name, _text(form, "role"))
            request.state.audit_detail = f"role of {name}: {_text(form, 'role')}"
            return translate(N_("Role of {name} changed.")).format(name=name)
        if action == "password":
            accounts.set_password(db, name, str(form.get("password") or ""))
            request.state.audit_detail = f"password of {name} reset"
            return translate(N_("Password of {name} reset.")).format(name=name)
        if action == "disable":
            accounts.disable_user(db, name)
            request.state.audit_detail = f"disabled user {name}"
            return translate(N_("User {name} disabled: their sessions have ended.")).format(name=name)
        raise AccountError(N_("unknown action"))

    def tokens_page(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        done = error = new_token = None
        status = 200
        if form is not None:
            translate = console.gettext(console.language(request))
            action, name = _text(form, "action"), _text(form, "name")
            try:
                if not name:
                    raise AccountError(N_("a token needs a name"))
                if action == "add":
                    scope = _text(form, "scope") or "read"
                    new_token = tokens.create(db, name, [scope])
                    request.state.audit_detail = f"token {name} ({scope}) added"
                    done = translate(N_("Token {name} added: copy it now, it is not shown again.")).format(name=name)
                elif action == "revoke":
                    tokens.revoke(db, name)
                    request.state.audit_detail = f"token {name} revoked"
                    done = translate(N_("Token {name} revoked.")).format(name=name)
                else:
                    raise AccountError(N_("unknown action"))
            except AccountError as exc:
                error, status = exc.in_language(translate), 400
            except LoaxaError as exc:
                error, status = str(exc), 400
            if error:
                request.state.audit_detail = error
        return console.render(
            request,
            "admin_tokens.html",
            status_code=status,
            tokens=tokens.listing(db),
            scopes=tokens.SCOPES,
            done=done,
            error=error,
            new_token=new_token,
        )

    def key_page(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        from loaxa.security import load_private_key, public_key_b64

        path = console.ctx.settings.signing.key_file
        kid = public = error = None
        if path is not None:
            try:
                key = load_private_key(path)
                kid, public = key.kid, public_key_b64(key.private_key)
            except LoaxaError as exc:
                error = str(exc)
        return console.render(request, "admin_key.html", path=path, kid=kid, public=public, error=error)

    def audit_page(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        who, token = request.query_params.get("user", ""), request.query_params.get("token", "")
        rows = audit_rows(console, who, token)
        return console.render(request, "admin_audit.html", rows=rows, who=who, token=token, limit=AUDIT_PAGE)

    def audit_csv(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        who, token = request.query_params.get("user", ""), request.query_params.get("token", "")
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["at", "user", "token", "method", "path", "status", "client", "detail"])
        for r in audit_rows(console, who, token, AUDIT_EXPORT):
            at = datetime.fromtimestamp(r["at"], UTC).isoformat(timespec="seconds")
            writer.writerow([at, r["user"], r["token"], r["method"], r["path"], r["status"], r["client"], r["detail"]])
        body = "\ufeff" + out.getvalue()  # a BOM: spreadsheet programs then read the UTF-8 right
        headers = {"Content-Disposition": 'attachment; filename="audit.csv"', "Cache-Control": "no-store"}
        return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8", headers=headers)

    admin = console.page("admin")
    return [
        Route("/admin", admin(overview), methods=["GET"]),
        Route("/admin/users", admin(users_page), methods=["GET", "POST"]),
        Route("/admin/tokens", admin(tokens_page), methods=["GET", "POST"]),
        Route("/admin/key", admin(key_page), methods=["GET"]),
        Route("/admin/audit", admin(audit_page), methods=["GET"]),
        Route("/admin/audit.csv", admin(audit_csv), methods=["GET"]),
    ]
