"""Watching bulletins go out: the recent bulletins, one bulletin's grid of stations, and its live stream.

The grid is every station the bulletin addressed, grouped by commune, each
with its latest receipt. `/bulletins/{id}/live` is a server-sent event
stream of what changed since the page was made: the changed stations' rows,
their communes' header rows and the new counts. It polls the database
(`bulletin_stations.updated_at`) rather than listening to this process's
ingest, so a page served by one instance sees receipts stored by another.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from loaxa.province.console.web import N_, Console, User
from loaxa.province.server import bulletins
from loaxa.province.server import schema as t
from loaxa.province.server.bulletins import BUCKETS, NotFound
from loaxa.province.server.database import Database

log = logging.getLogger(__name__)

POLL_S = 0.3  # a few looks a second at the database per open grid
# Rows are looked for from this long before the newest one sent: a receipt stored by another instance
# in a transaction that began earlier (so with an older updated_at) may commit after a newer one was seen.
OVERLAP_S = 3.0
SESSION_CHECK_S = 30.0  # how long an open stream outlives its session at most
# Each open stream looks at the database a few times a second: a script opening hundreds would starve the
# server (600 streams of one user took /fleet from 4 ms to 0.56 s). Ten tabs per user, 300 in all.
STREAMS_PER_USER = 10
STREAMS_IN_ALL = 300
BUCKET_OF = {status: bucket for bucket, members in BUCKETS.items() for status in members}
# Each bucket: a symbol and a word, so the grid does not speak in colours alone.
LOOK = {
    "no_answer": ("?", N_("No answer")),
    "received": ("↓", N_("Received")),
    "awaiting_approval": ("◷", N_("Awaiting approval")),
    "held": ("‖", N_("Held")),
    "started": ("▶", N_("On air")),
    "finished": ("✓", N_("Finished")),
    "failed": ("✗", N_("Failed")),
    "cancelled": ("⊘", N_("Cancelled")),
}
# A receipt that is not its bucket's own word is named too ("Failed: rejected").
WORDS = {
    "scheduled": N_("scheduled"),
    "approved": N_("approved"),
    "superseded": N_("superseded"),
    "interrupted": N_("interrupted"),
    "resumed": N_("resumed"),
    "rejected": N_("rejected"),
    "missed": N_("missed"),
    "expired": N_("expired"),
    "declined": N_("declined"),
}
PRIORITIES = {"emergency": N_("emergency"), "high": N_("high"), "normal": N_("normal"), "low": N_("low")}
FILTERS = {
    "all": (N_("All"), tuple(BUCKETS)),
    "failed": (N_("Failed"), ("failed",)),
    "held": (N_("Held"), ("held", "awaiting_approval")),
    "no_answer": (N_("No answer"), ("no_answer",)),
}


@dataclass(frozen=True)
class Cell:
    """One station's row in the grid."""

    station: str
    name: str | None
    expected: bool
    status: str
    detail: str | None
    received_at: float | None
    started_at: float | None
    finished_at: float | None
    updated_at: float | None

    @property
    def bucket(self) -> str:
        return BUCKET_OF.get(self.status, "received")

    @property
    def commune(self) -> str:
        return "/".join(self.station.split("/")[:2])

    @property
    def dom_id(self) -> str:
        return dom_id("st", self.station)


def dom_id(kind: str, path: str) -> str:
    return f"{kind}-{path.replace('/', '.')}"


def counts(statuses: list[str]) -> dict[str, int]:
    out = dict.fromkeys(BUCKETS, 0)
    for status in statuses:
        out[BUCKET_OF.get(status, "received")] += 1
    return out


def cells(db: Database, pk: int, since: float | None = None) -> list[Cell]:
    """The bulletin's stations (only those stored after `since` when given), with their names; one query."""
    s, m = t.bulletin_stations.c, t.station_meta.c
    query = (
        select(s.station, m.name, s.expected, s.status, s.detail, s.received_at, s.started_at, s.finished_at)
        .add_columns(s.updated_at)
        .select_from(t.bulletin_stations.outerjoin(t.station_meta, m.station == s.station))
        .where(s.bulletin == pk)
    )
    if since is not None:
        query = query.where(s.updated_at > since)
    with db.engine.connect() as conn:
        return [Cell(*row) for row in conn.execute(query.order_by(s.station))]


def statuses(db: Database, pk: int) -> dict[str, str]:
    s = t.bulletin_stations.c
    with db.engine.connect() as conn:
        return dict(conn.execute(select(s.station, s.status).where(s.bulletin == pk)).all())


def commune_names(db: Database) -> dict[str, str]:
    """P/C -> the commune's name, from the stations' metadata (the first name given wins)."""
    m = t.station_meta.c
    out: dict[str, str] = {}
    with db.engine.connect() as conn:
        for station, name in conn.execute(
            select(m.station, m.commune_name).where(m.commune_name.is_not(None)).order_by(m.station)
        ):
            out.setdefault("/".join(station.split("/")[:2]), name)
    return out


class Watch:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.db = console.ctx.db
        self.zone = ZoneInfo(console.ctx.settings.province.timezone)
        self.open: dict[int, int] = {}  # user id -> live streams now open (changed on the event loop only)

    def clock(self, epoch: float | None) -> str:
        return "" if epoch is None else datetime.fromtimestamp(epoch, self.zone).strftime("%H:%M:%S")

    def local(self, iso: str | None) -> str:
        """An ISO time from the server's summaries as the province's wall clock."""
        return "" if not iso else datetime.fromisoformat(iso).astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    # -- pages ------------------------------------------------------------------------
    def index(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        return self.console.render(
            request,
            "watch_list.html",
            bulletins=bulletins.recent(self.db),
            look=LOOK,
            priorities=PRIORITIES,
            local=self.local,
        )

    def grid(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        bulletin_id = request.path_params["bulletin_id"]
        try:
            row = bulletins.latest(self.db, bulletin_id)
        except NotFound:
            return self.console.error(request, 404, N_("No such bulletin was sent through this server."))
        show = request.query_params.get("show", "all")
        show = show if show in FILTERS else "all"
        made_at = time.time()
        rows = cells(self.db, row.id)
        names = commune_names(self.db)
        groups: dict[str, list[Cell]] = {}
        for cell in rows:
            groups.setdefault(cell.commune, []).append(cell)
        summary = bulletins.summary(self.db, bulletin_id)
        return self.console.render(
            request,
            "watch_grid.html",
            b=summary,
            pk=row.id,
            groups=groups,
            commune_counts={c: counts([x.status for x in g]) for c, g in groups.items()},
            names=names,
            show=show,
            shown=FILTERS[show][1],
            filters=FILTERS,
            look=LOOK,
            words=WORDS,
            priorities=PRIORITIES,
            clock=self.clock,
            local=self.local,
            dom_id=dom_id,
            since=made_at - OVERLAP_S,
        )

    def too_many(self, user: User) -> bool:
        return self.open.get(user.id, 0) >= STREAMS_PER_USER or sum(self.open.values()) >= STREAMS_IN_ALL

    def live(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        try:
            row = bulletins.latest(self.db, request.path_params["bulletin_id"])
        except NotFound:
            return Response(status_code=404)
        if self.too_many(user):
            log.warning("live stream refused to %s: %d open", user.name, self.open.get(user.id, 0))
            response = self.console.error(request, 429, N_("Too many live pages are open: close some and reload."))
            response.headers["Retry-After"] = "30"
            return response
        show = request.query_params.get("show", "all")
        since = _number(request.headers.get("last-event-id")) or _number(request.query_params.get("since"))
        events = self.counted(
            user, self.stream(request, row.id, FILTERS.get(show, FILTERS["all"])[1], since or time.time())
        )
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # no proxy may hold events back
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"], headers["Vary"] = "gzip", "Accept-Encoding"
            return StreamingResponse(_gzipped(events), media_type="text/event-stream", headers=headers)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    # -- the live stream -----------------------------------------------------------------
    async def counted(self, user: User, events: AsyncGenerator[str | bytes, None]) -> AsyncGenerator[str | bytes, None]:
        """`events`, counted among the user's open streams while they run (counted here, on the event loop,
        so a stream that never started is never counted). Over the limit it ends at once: the browser's
        reconnection then gets the 429 with its reason."""
        if self.too_many(user):
            await events.aclose()
            return
        self.open[user.id] = self.open.get(user.id, 0) + 1
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()
            left = self.open.pop(user.id, 1) - 1
            if left:
                self.open[user.id] = left

    async def stream(
        self, request: Request, pk: int, shown: tuple[str, ...], since: float
    ) -> AsyncGenerator[str | bytes, None]:
        """Events until the client goes or the server stops; each poll sends only what changed."""
        stopping: threading.Event | None = getattr(request.app.state, "stopping", None)
        lang = self.console.language(request)
        sent: dict[str, tuple[str, str | None, float | None]] = {}  # station -> what its row showed when sent
        newest = since
        checked = time.monotonic()
        yield "retry: 3000\n\n"
        while not (stopping is not None and stopping.is_set()):
            if await request.is_disconnected():
                break
            if time.monotonic() - checked > SESSION_CHECK_S:  # a logout or a disabled user ends the stream too
                if await run_in_threadpool(self.console.session_of, request) is None:
                    break
                checked = time.monotonic()
            changed = await run_in_threadpool(cells, self.db, pk, newest - OVERLAP_S)
            fresh = [c for c in changed if sent.get(c.station) != (c.status, c.detail, c.updated_at)]
            if fresh:
                newest = max(newest, *(c.updated_at or 0.0 for c in fresh))
                for c in fresh:
                    sent[c.station] = (c.status, c.detail, c.updated_at)
                sent = {k: v for k, v in sent.items() if (v[2] or 0.0) > newest - 2 * OVERLAP_S}
                yield await run_in_threadpool(self._events, pk, fresh, shown, lang, newest)
            await asyncio.sleep(POLL_S)
        log.debug("live stream of bulletin %s ended", pk)

    def _events(self, pk: int, fresh: list[Cell], shown: tuple[str, ...], lang: str, newest: float) -> str:
        """The changed rows and their communes' header rows, then the counts: two SSE events."""
        now = statuses(self.db, pk)
        names = commune_names(self.db)
        values = {"_": self.console.gettext(lang), "look": LOOK, "words": WORDS, "clock": self.clock, "dom_id": dom_id}
        macros: Any = self.console.env.get_template("watch_cells.html").make_module(values)
        parts = [str(macros.cell(c, c.bucket not in shown)) for c in fresh]
        for commune in sorted({c.commune for c in fresh}):
            mine = [st for station, st in now.items() if station.startswith(commune + "/")]
            parts.append(str(macros.commune_row(commune, names.get(commune), counts(mine))))
        totals = str(macros.totals(counts(list(now.values())), len(now)))
        return _event("cells", "".join(parts), newest) + _event("counts", totals, newest)


async def _gzipped(events: AsyncGenerator[str | bytes, None]) -> AsyncIterator[bytes]:
    """The stream gzipped, each event flushed as it is made (rows of HTML shrink tenfold on a 4G link).

    The console's compressor leaves event streams alone because it would hold events back until its
    buffer fills; a sync flush after each event sends it whole at once.
    """
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    try:
        async for event in events:
            data = event.encode("utf-8") if isinstance(event, str) else event
            yield packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH)
        yield packer.flush()
    finally:
        await events.aclose()  # the client went: the poll loop ends now, not when it is collected


def _event(name: str, html: str, newest: float) -> str:
    data = "".join(f"data: {line}\n" for line in html.splitlines() if line.strip())
    return f"event: {name}\nid: {newest:.6f}\n{data}\n"


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def routes(console: Console) -> list[BaseRoute]:
    watch = Watch(console)
    viewer = console.page("viewer")
    return [
        Route("/bulletins", viewer(watch.index), methods=["GET"]),
        Route("/bulletins/{bulletin_id}", viewer(watch.grid), methods=["GET"]),
        Route("/bulletins/{bulletin_id}/live", viewer(watch.live), methods=["GET"]),
    ]
