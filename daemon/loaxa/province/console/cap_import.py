"""A CAP 1.2 alert into the compose form: the draft's fields, and what could not be filled.

The alert is read and mapped by the same code as `loaxa cap` (`parse_cap`,
`cap_to_commands`: the safe parser that refuses DOCTYPEs and entities and
documents over 1 MiB, the priority table, the announcer's text), so an
imported draft says what the bridge would have sent. What is left to the
editor comes back as warnings: areas that name no commune of the province,
a start time, a scope that is not public.

Areas map to communes by name: an `<areaDesc>` ("Xã Ba Vì", "ba-vi";
several may be given with commas) matches a commune whose slug or name in
`station_meta` reads the same without accents, case and the words xã,
phường, thị trấn.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from loaxa.province.cap import MAX_DOCUMENT_BYTES, CapError, CapNotLive, cap_to_commands, parse_cap, pick_info
from loaxa.province.console.media import limited
from loaxa.province.console.web import Console, User
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database

log = logging.getLogger(__name__)

FORM_SLACK = 64 * 1024
_PREFIX = re.compile(r"^(xa|phuong|thi tran|thi xa|huyen|thanh pho|tp\.?)\s+")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_DECLARED = re.compile(r"""^(\s*<\?xml[^>]*?\bencoding\s*=\s*["'])[^"']*(["'])""")


def fold(name: str) -> str:
    """ "Xã Ba Vì" and "ba-vi" both → "ba-vi": no accents, no case, no administrative word."""
    plain = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).lower().strip()
    plain = _PREFIX.sub("", " ".join(plain.replace("-", " ").split()))
    return _NOT_SLUG.sub("-", plain).strip("-")


def pasted(xml: str) -> bytes:
    """Pasted XML as bytes: the browser sent text, so a declared encoding (ISO-8859-1, UTF-16) no longer holds."""
    return _DECLARED.sub(r"\1UTF-8\2", xml, count=1).encode("utf-8")


def communes(db: Database) -> dict[str, str]:
    """Folded name → commune slug, for every commune with a station in the registry or the console's metadata."""
    known: dict[str, str] = {}
    with db.engine.connect() as conn:
        for (commune,) in conn.execute(select(t.stations.c.commune).distinct()):
            known.setdefault(fold(commune), commune)
        meta = t.station_meta.c
        for station, name in conn.execute(select(meta.station, meta.commune_name)):
            parts = str(station).split("/")
            if name and len(parts) == 3:
                known.setdefault(fold(name), parts[1])
                known.setdefault(fold(parts[1]), parts[1])
    return known


def draft_fields(data: bytes, db: Database, province: str, now: datetime, _: Callable[[str], str]) -> dict[str, Any]:
    """The draft's fields from one CAP document; CapError (or CapNotLive) with the reason when it has none."""
    alert = parse_cap(data)
    commands = cap_to_commands(alert, now)
    bulletins = [c for c in commands if c["type"] == "bulletin"]
    if not bulletins:
        if commands:
            raise CapError(_("this alert cancels an earlier one: withdraw that bulletin instead"))
        raise CapError(
            _("this alert has nothing to air ({status} {kind})").format(status=alert.status, kind=alert.msg_type)
        )
    command = bulletins[0]
    info = pick_info(alert)
    warnings: list[str] = []
    known = communes(db)
    targets: list[str] = []
    for area in info.areas:
        for name in filter(None, (n.strip() for n in re.split(r"[,;]", area))):
            slug = known.get(fold(name))
            if slug is None:
                warnings.append(
                    _("area “{area}” matches no commune of the province: choose its targets").format(area=name)
                )
            elif f"{province}/{slug}" not in targets:
                targets.append(f"{province}/{slug}")
    if not info.areas:
        warnings.append(_("the alert names no area: choose the targets"))
    at = command.get("schedule", {}).get("at")
    if at:
        warnings.append(_("the alert takes effect at {at}: it is scheduled then").format(at=at))
    if alert.scope != "Public":
        warnings.append(_("the alert's scope is {scope}: the loudspeakers make it public").format(scope=alert.scope))
    return {
        "title": (info.headline or info.event)[:200],
        "text": command["text"],
        "priority": command["priority"],
        "expires": command.get("expires"),
        "at": at,
        "targets": targets,
        "warnings": warnings,
        "cap": {"identifier": alert.identifier, "sender": alert.sender, "bulletin_id": command["id"]},
    }


def routes(console: Console) -> list[BaseRoute]:
    ctx = console.ctx

    def cap_import(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        _ = console.gettext(user.language)
        form = form or {}
        upload = form.get("file")
        if isinstance(upload, dict) and upload.get("data"):
            data = bytes(upload["data"])
        else:
            data = pasted(str(form.get("xml") or ""))
        if not data.strip():
            return JSONResponse({"error": _("give a CAP 1.2 file or paste its XML")}, status_code=400)
        try:
            fields = draft_fields(data, ctx.db, ctx.settings.province.id, datetime.now(UTC), _)
        except CapNotLive as exc:
            return JSONResponse({"error": _("not aired: {reason}").format(reason=exc)}, status_code=422)
        except CapError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        request.state.audit_detail = f"CAP {fields['cap']['identifier']} from {fields['cap']['sender']}"[:300]
        return JSONResponse(fields)

    endpoint = limited(console, console.page("editor")(cap_import), MAX_DOCUMENT_BYTES + FORM_SLACK)
    return [Route("/console/cap-import", endpoint, methods=["POST"])]
