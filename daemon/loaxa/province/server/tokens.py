"""API tokens and the audit log.

A token is shown once, when it is made; the database keeps only its
SHA-256, its name and its scopes (`read`, `send`; `send` includes `read`).
A revoked token is refused from then on. Every API request is written to
the audit log with the token's name, the path and the answer's status.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from loaxa.errors import LoaxaError
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database

SCOPES = ("read", "send")
PREFIX = "lxp_"


@dataclass(frozen=True)
class Token:
    name: str
    scopes: frozenset[str]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(db: Database, name: str, scopes: list[str]) -> str:
    """A new token (shown once); LoaxaError for an unknown scope or a name in use."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise LoaxaError(f"scopes must be some of {', '.join(SCOPES)}, got {', '.join(scopes) or 'none'}")
    if "send" in scopes:
        scopes = [*scopes, "read"]
    token = PREFIX + secrets.token_urlsafe(32)
    try:
        with db.engine.begin() as conn:
            conn.execute(
                t.tokens.insert().values(
                    name=name, scopes=",".join(sorted(set(scopes))), digest=digest(token), created_at=time.time()
                )
            )
    except IntegrityError:
        raise LoaxaError(f"a token named {name!r} exists already (revoke it, or choose another name)") from None
    return token


def revoke(db: Database, name: str) -> None:
    with db.engine.begin() as conn:
        done = conn.execute(
            t.tokens.update()
            .where(t.tokens.c.name == name, t.tokens.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
    if done.rowcount == 0:
        raise LoaxaError(f"no active token named {name!r}")


def check(db: Database, token: str) -> Token | None:
    """The token's name and scopes, or None when it is unknown or revoked."""
    c = t.tokens.c
    with db.engine.connect() as conn:
        row = conn.execute(select(c.name, c.scopes, c.revoked_at).where(c.digest == digest(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    return Token(row.name, frozenset(row.scopes.split(",")))


def listing(db: Database) -> list[dict[str, object]]:
    c = t.tokens.c
    with db.engine.connect() as conn:
        rows = conn.execute(select(c.name, c.scopes, c.created_at, c.revoked_at).order_by(c.name)).all()
    return [
        {"name": r.name, "scopes": r.scopes, "created_at": r.created_at, "revoked": r.revoked_at is not None}
        for r in rows
    ]


def audit(
    db: Database,
    *,
    token: str | None,
    method: str,
    path: str,
    status: int,
    client: str | None,
    detail: str | None = None,
    user: str | None = None,
) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            t.audit.insert().values(
                at=time.time(),
                token=token,
                user=user,
                method=method,
                path=path[:2000],
                status=status,
                client=client,
                detail=detail[:2000] if detail else None,
            )
        )
