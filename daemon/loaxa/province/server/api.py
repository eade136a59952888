"""The HTTP API: JSON over Starlette, an OpenAPI document at /openapi.json.

Every request under /api/v1 carries `Authorization: Bearer TOKEN`; `read`
lets a client list stations and follow bulletins, `send` also submit and
cancel. An unknown or revoked token is 401, a missing scope 403. Every
request, answered or refused, is written to the audit log. The database
work runs in Starlette's thread pool, never on the event loop. `build_app`
returns the application object; the web console mounts its pages on it.

While the database fails, a request that needs it is answered 503 with the
error in words, and `/api/v1/health` still answers a token the database
confirmed within the last `CONFIRMED_S` (a monitor that polls health keeps
seeing why); a revoked token is refused again as soon as the database is
back. An audit line the database cannot take is logged instead.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from loaxa.errors import LoaxaError
from loaxa.province.server import asrun, bulletins, registry, tokens
from loaxa.province.server.bulletins import Conflict, NotFound, Publish
from loaxa.province.server.database import Database, DatabaseError, first_line
from loaxa.province.server.settings import ProvinceServerSettings

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
CONFIRMED_S = 600.0  # a token checked this recently still reads health while the database cannot check it
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Context:
    settings: ProvinceServerSettings
    db: Database
    publish: Publish
    status: Callable[[], dict[str, Any]]


class Refused(Exception):
    def __init__(self, status: int, message: str, token: tokens.Token | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.token = token  # a known token refused for its scope is named in the audit log


def build_app(ctx: Context) -> Starlette:
    confirmed: dict[str, tuple[tokens.Token, float]] = {}  # token digest → the token, when the database last said so

    def guarded(
        scope: str, work: Callable[[Request, Any, tokens.Token], Any], *, without_database: bool = False
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            token: tokens.Token | None = None
            status, answer, detail = 200, None, None
            try:
                token = await run_in_threadpool(_authorise, ctx.db, request, scope, confirmed, without_database)
                body = await _body(request) if request.method == "POST" else None
                answer = await run_in_threadpool(work, request, body, token)
            except Refused as exc:
                status, detail, token = exc.status, str(exc), token or exc.token
            except NotFound as exc:
                status, detail = 404, str(exc)
            except Conflict as exc:
                status, detail = 409, str(exc)
            except DatabaseError as exc:
                status, detail = 503, str(exc)
            except LoaxaError as exc:
                status, detail = 400, str(exc)
            except SQLAlchemyError as exc:
                status, detail = 503, f"the database failed: {first_line(exc)}"
            await run_in_threadpool(
                _audit,
                ctx.db,
                token=token.name if token else None,
                method=request.method,
                path=request.url.path,
                status=status,
                client=request.client.host if request.client else None,
                detail=detail,
            )
            if status != 200:
                return JSONResponse({"error": detail}, status_code=status)
            return answer if isinstance(answer, Response) else JSONResponse(answer)

        endpoint.__doc__ = work.__doc__
        return endpoint

    s = ctx.settings
    key = str(s.signing.key_file) if s.signing.key_file else None

    def stations(request: Request, body: Any, token: tokens.Token) -> Any:
        """
        summary: Every known station with its status (online, offline, silent), voice, clock and faults.
        parameters: [{name: commune, in: query, schema: {type: string}, description: "only P/C"}]
        responses: {200: {description: a list of stations}}
        """
        return registry.list_stations(ctx.db, s.stations.silent_after_s, commune=request.query_params.get("commune"))

    def submit(request: Request, body: Any, token: tokens.Token) -> Any:
        """
        summary: Send a bulletin, signed by the server, to targets (P, P/C, P/C/S, P/group/G).
        requestBody: {content: {application/json: {schema: {type: object, required: [targets, bulletin],
          properties: {targets: {type: array, items: {type: string}}, bulletin: {type: object}}}}}}
        responses: {200: {description: the bulletin's summary}, 409: {description: id and rev sent already}}
        """
        if not isinstance(body, dict) or not isinstance(body.get("bulletin"), dict):
            raise LoaxaError('expected {"targets": [...], "bulletin": {...}}')
        targets = body.get("targets")
        if not isinstance(targets, list) or not all(isinstance(x, str) for x in targets):
            raise LoaxaError("targets: a list of P, P/C, P/C/S or P/group/G")
        return bulletins.submit(
            ctx.db,
            ctx.publish,
            prefix=s.province.prefix,
            province=s.province.id,
            command=body["bulletin"],
            targets=targets,
            sender=f"api:{token.name}",
            key_file=key,
        )

    def cancel(request: Request, body: Any, token: tokens.Token) -> Any:
        """
        summary: Cancel a bulletin at every station it was sent to.
        responses: {200: {description: the bulletin's summary}, 404: {description: unknown bulletin}}
        """
        return bulletins.cancel(
            ctx.db,
            ctx.publish,
            prefix=s.province.prefix,
            bulletin_id=request.path_params["id"],
            sender=f"api:{token.name}",
            key_file=key,
        )

    def recent(request: Request, body: Any, token: tokens.Token) -> Any:
        """
        summary: The last 100 bulletins sent through the server, newest first, with their summaries.
        responses: {200: {description: a list of summaries}}
        """
        return bulletins.recent(ctx.db)

    def summary(request: Request, body: Any, token: tokens.Token) -> Any:
        """
        summary: One bulletin's summary (received, started, finished, failed, held, awaiting approval, no answer).
        responses: {200: {description: the summary}, 404: {description: unknown bulletin}}
        """
        return bulletins.summary(ctx.db, request.path_params["id"])

    def receipts(request: Request, body: Any, token: tokens.Token) -> Any:
        """
        summary: One bulletin's receipts, one row per station.
        responses: {200: {description: a list of stations and their status}, 404: {description: unknown bulletin}}
        """
        return bulletins.receipts(ctx.db, request.path_params["id"])

    def health(request: Request, body: Any, token: tokens.Token) -> Any:
        """
        summary: The server's MQTT session and database, and what it has stored.
        responses: {200: {description: counters and errors}}
        """
        return ctx.status()

    def report(request: Request, body: Any, token: tokens.Token) -> Any:
        """
        summary: As-run report (log book rows, days, planned versus aired) of a scope for a period.
        parameters: [{name: scope, in: query, required: true, schema: {type: string}, description: "P, P/C, P/group/G"},
          {name: period, in: query, schema: {type: string, enum: [day, week, month, year]}},
          {name: date, in: query, required: true, schema: {type: string, format: date}},
          {name: format, in: query, schema: {type: string, enum: [json, csv, xlsx]}}]
        responses: {200: {description: the report}}
        """
        q = request.query_params
        try:
            day = date.fromisoformat(q.get("date", ""))
        except ValueError:
            raise LoaxaError("date: YYYY-MM-DD") from None
        result = asrun.report(ctx.db, q.get("scope", ""), q.get("period", "day"), day, ZoneInfo(s.province.timezone))
        fmt = q.get("format", "json")
        if fmt == "csv":
            return Response(asrun.to_csv(result), media_type="text/csv; charset=utf-8")
        if fmt == "xlsx":
            return Response(asrun.to_xlsx(result), media_type=XLSX)
        return result

    schemas = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "loaxa province server", "version": "1"}})
    routes = [
        Route("/api/v1/stations", guarded("read", stations), methods=["GET"]),
        Route("/api/v1/bulletins", guarded("send", submit), methods=["POST"]),
        Route("/api/v1/bulletins", guarded("read", recent), methods=["GET"]),
        Route("/api/v1/bulletins/{id}", guarded("read", summary), methods=["GET"]),
        Route("/api/v1/bulletins/{id}/receipts", guarded("read", receipts), methods=["GET"]),
        Route("/api/v1/bulletins/{id}/cancel", guarded("send", cancel), methods=["POST"]),
        Route("/api/v1/health", guarded("read", health, without_database=True), methods=["GET"]),
        Route("/api/v1/reports/asrun", guarded("read", report), methods=["GET"]),
    ]

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(schemas.get_schema(routes=app.routes))

    app = Starlette(routes=[*routes, Route("/openapi.json", openapi, include_in_schema=False)])
    app.state.context = ctx
    if s.console.enabled:
        from loaxa.province.console import mount

        mount(app, ctx)
    return app


def _authorise(
    db: Database,
    request: Request,
    scope: str,
    confirmed: dict[str, tuple[tokens.Token, float]],
    without_database: bool,
) -> tokens.Token:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise Refused(401, "an API token is required: Authorization: Bearer TOKEN")
    secret = header[7:].strip()
    digest = tokens.digest(secret)
    try:
        token = tokens.check(db, secret)
    except SQLAlchemyError as exc:
        known = confirmed.get(digest)
        if without_database and known is not None and time.monotonic() - known[1] < CONFIRMED_S:
            token = known[0]
        else:
            raise Refused(503, f"the database cannot be reached to check the token: {first_line(exc)}") from None
    else:
        if token is None:
            confirmed.pop(digest, None)
            raise Refused(401, "unknown or revoked API token")
        confirmed[digest] = (token, time.monotonic())
    if scope not in token.scopes:
        raise Refused(403, f"token {token.name!r} has no {scope!r} scope", token)
    return token


async def _body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Refused(413, f"request body over {MAX_BODY // 1024} KiB")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the request body is not JSON") from None


def _audit(db: Database, **line: Any) -> None:
    """The request's audit line; a database that cannot take it must not change the answer."""
    try:
        tokens.audit(db, **line)
    except SQLAlchemyError as exc:
        log.error("audit line not written (%s %s → %s): %s", line["method"], line["path"], line["status"], exc)
