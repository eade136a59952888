"""Bulletins sent through the server: signed, recorded, tracked per station.

A submission names its targets the way a command's `to` does (`P`, `P/C`,
`P/C/S`, `P/group/G`). Each target gets its own command, stamped with
`issued` and signed with the server's issuer key; with `to` too (protocol
1.1: a signature made for one commune cannot be replayed to the province)
as soon as the station's protocol model accepts that field. Before anything is
published, the bulletin and one row per expected station (the registry's
stations that the targets address, status `no_answer`) are committed, so
no receipt can arrive before its bulletin is known. The ingest then moves
each station's row along with its receipts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from loaxa.errors import CommandError, LoaxaError
from loaxa.jsonwire import compact, compact_bytes
from loaxa.protocol import Bulletin, Cancel, validate_command
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database
from loaxa.province.server.registry import addressed, iso
from loaxa.province.targets import Target, parse_target
from loaxa.security import SigningKey, load_private_key, sign
from loaxa.topics import GROUP

log = logging.getLogger(__name__)

SERVER_FIELDS = ("issued", "to", "kid", "sig")  # the server sets these
# Receipt statuses grouped as the per-bulletin summary counts them.
BUCKETS = {
    "no_answer": ("no_answer",),
    "received": ("received", "scheduled", "approved", "superseded"),
    "awaiting_approval": ("awaiting_approval",),
    "held": ("held",),
    "started": ("started", "interrupted", "resumed"),
    "finished": ("finished",),
    "failed": ("failed", "rejected", "missed", "expired", "declined"),
    "cancelled": ("cancelled",),
}

Publish = Callable[[str, bytes], None]


class NotFound(LoaxaError):
    """No bulletin with that id was sent through this server."""


class Conflict(LoaxaError):
    """That id and rev were sent already."""


def target_of(to: str) -> Target:
    """A `to` string (`hn`, `hn/ba-vi`, `hn/ba-vi/loa-1`, `hn/group/coastal`) as a Target."""
    parts = to.strip().split("/")
    if len(parts) == 3 and parts[1] == GROUP:
        return parse_target("group", f"{parts[0]}/{parts[2]}")
    kinds = {1: "province", 2: "commune", 3: "station"}
    if len(parts) not in kinds:
        raise LoaxaError(f"target {to!r}: expected P, P/C, P/C/S or P/group/G")
    return parse_target(kinds[len(parts)], to)


def to_of(target: Target) -> str:
    if target.kind == "group":
        return f"{target.parts[0]}/{GROUP}/{target.parts[1]}"
    return "/".join(target.parts)


def kind_of(command: dict[str, Any]) -> str:
    return next((k for k in ("text", "audio", "stream", "parts") if k in command), "text")


def submit(
    db: Database,
    publish: Publish,
    *,
    prefix: str,
    province: str,
    command: dict[str, Any],
    targets: list[str],
    sender: str,
    key_file: str | None,
) -> dict[str, Any]:
    """Record, sign and publish one bulletin; its summary. LoaxaError says what is wrong."""
    command = {k: v for k, v in command.items() if k not in SERVER_FIELDS}
    command.setdefault("type", "bulletin")
    if command["type"] != "bulletin":
        raise LoaxaError("type: only bulletins are submitted here (cancel has its own request)")
    if not isinstance(command.get("id"), str):
        raise LoaxaError("id: required, 1-64 of A-Z a-z 0-9 . _ : -")
    parsed = _targets(targets, province)
    key = load_private_key(key_file) if key_file else None
    signed = [_stamped(command, tg, key) for tg in parsed]
    expected = addressed(db, parsed)
    now = time.time()
    rev = command.get("rev", 1)
    try:
        with db.engine.begin() as conn:
            pk: Any = conn.execute(
                t.bulletins.insert().values(
                    bulletin_id=command["id"],
                    rev=rev,
                    kind=kind_of(command),
                    priority=command.get("priority", "normal"),
                    targets=compact([to_of(tg) for tg in parsed]),
                    sender=sender,
                    issuer=signed[0].get("kid"),
                    command=compact(signed),
                    sent_at=now,
                )
            ).inserted_primary_key
            pk = pk[0]
            if expected:
                conn.execute(
                    t.bulletin_stations.insert(),
                    [{"bulletin": pk, "station": s, "expected": True, "status": "no_answer"} for s in expected],
                )
    except IntegrityError:
        raise Conflict(
            f"bulletin {command['id']} rev {rev} was sent already; send a higher rev to replace it"
        ) from None
    for tg, cmd in zip(parsed, signed, strict=True):
        publish(tg.topic(prefix), compact_bytes(cmd))
    log.info(
        "%s sent bulletin %s rev %s to %s (%d stations expected)", sender, command["id"], rev, targets, len(expected)
    )
    return summary(db, command["id"])


def cancel(
    db: Database, publish: Publish, *, prefix: str, bulletin_id: str, sender: str, key_file: str | None
) -> dict[str, Any]:
    row = latest(db, bulletin_id)
    key = load_private_key(key_file) if key_file else None
    for to in json.loads(row.targets):
        tg = target_of(to)
        publish(tg.topic(prefix), compact_bytes(_stamped({"type": "cancel", "id": bulletin_id}, tg, key)))
    with db.engine.begin() as conn:
        conn.execute(
            t.bulletins.update().where(t.bulletins.c.id == row.id).values(cancelled_at=time.time(), cancelled_by=sender)
        )
    log.info("%s cancelled bulletin %s", sender, bulletin_id)
    return summary(db, bulletin_id)


def summary(db: Database, bulletin_id: str) -> dict[str, Any]:
    """Who sent it, when, and how many expected stations are in each state."""
    row = latest(db, bulletin_id)
    s = t.bulletin_stations.c
    with db.engine.connect() as conn:
        query = select(s.status, func.count()).where(s.bulletin == row.id).group_by(s.status)
        counts: dict[str, int] = {status: n for status, n in conn.execute(query).all()}
    buckets = {name: sum(counts.get(st, 0) for st in members) for name, members in BUCKETS.items()}
    return {
        "id": row.bulletin_id,
        "rev": row.rev,
        "kind": row.kind,
        "priority": row.priority,
        "targets": json.loads(row.targets),
        "sender": row.sender,
        "issuer": row.issuer,
        "sent_at": iso(row.sent_at),
        "cancelled_at": iso(row.cancelled_at),
        "stations": sum(counts.values()),
        "summary": buckets,
        "statuses": counts,
    }


def receipts(db: Database, bulletin_id: str) -> list[dict[str, Any]]:
    """One row per station: expected or not, its last status, and when it received, started, finished."""
    row = latest(db, bulletin_id)
    s = t.bulletin_stations.c
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.bulletin_stations).where(s.bulletin == row.id).order_by(s.station)).all()
    return [
        {
            "station": r.station,
            "expected": r.expected,
            "status": r.status,
            "detail": r.detail,
            "received_at": iso(r.received_at),
            "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at),
        }
        for r in rows
    ]


def recent(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    b = t.bulletins.c
    with db.engine.connect() as conn:
        rows = conn.execute(select(b.bulletin_id).order_by(b.sent_at.desc()).limit(limit)).all()
    return [summary(db, r.bulletin_id) for r in rows]


def _stamped(command: dict[str, Any], target: Target, key: SigningKey | None) -> dict[str, Any]:
    """The command for one target: `issued`, `to` (once the stations' protocol knows it), signed; checked."""
    body = {k: v for k, v in command.items() if k not in SERVER_FIELDS}
    model = Bulletin if body["type"] == "bulletin" else Cancel
    if "to" in model.model_fields:
        body["to"] = to_of(target)
    now = datetime.now(UTC)
    body = (
        sign(body, key.private_key, key.kid, issued=now)
        if key
        else {**body, "issued": now.isoformat(timespec="seconds")}
    )
    try:
        validate_command(body)
    except CommandError as exc:
        raise LoaxaError(f"stations would reject this command: {exc}") from None
    return body


def _targets(targets: list[str], province: str) -> list[Target]:
    if not targets:
        raise LoaxaError("targets: at least one of P, P/C, P/C/S or P/group/G")
    parsed = [target_of(to) for to in targets]
    for tg in parsed:
        if tg.province != province:
            raise LoaxaError(f"target {to_of(tg)}: this server serves province {province} only")
    return parsed


def latest(db: Database, bulletin_id: str) -> Any:
    """The bulletin's row of its latest rev, or NotFound."""
    b = t.bulletins.c
    with db.engine.connect() as conn:
        row = conn.execute(
            select(t.bulletins).where(b.bulletin_id == bulletin_id).order_by(b.rev.desc()).limit(1)
        ).first()
    if row is None:
        raise NotFound(f"no bulletin {bulletin_id!r} was sent through this server")
    return row
