"""Console accounts: names, roles, argon2 password hashes, and the login check.

A name is kept in lower case and compared so ("Admin" logs in as "admin"), so
neither a login nor the login limiter depends on how the name was typed.
`verify` costs one argon2 check whether or not the name exists (a dummy hash
for an unknown or disabled user), so its answer and its timing say nothing
about which names exist. A hash made with older argon2 parameters is
replaced by a new one at the next good login.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from loaxa.errors import LoaxaError
from loaxa.i18n import _
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database

log = logging.getLogger(__name__)

ROLES = ("viewer", "editor", "approver", "admin")  # each role has the rights of those before it
MIN_PASSWORD = 8
MAX_NAME = 64


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    language: str  # "vi" or "en": the user's choice, else the console's default

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def N_(message: str) -> str:
    """Marks an English message translated later, in the reader's language (a web page's, not the CLI's)."""
    return message


class AccountError(LoaxaError):
    """A refused account change; `in_language` words it for a web page's reader."""

    def __init__(self, message: str, **fields: str) -> None:
        self.message, self.fields = message, fields
        super().__init__(_(message).format(**fields))

    def in_language(self, translate: Callable[[str], str]) -> str:
        return translate(self.message).format(**self.fields)


_hasher = PasswordHasher()
# Each argon2 check takes 64 MiB and a core for a fraction of a second; a burst of logins (names and
# addresses all different, so the limiter does not yet hold them back) waits here instead of taking
# the server's memory: at most one check per core at a time.
_checks = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def _hash(password: str) -> str:
    with _checks:
        return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hash("not a password anyone has")


def normal_name(name: str) -> str:
    return name.strip().lower()


def check_name(name: str) -> str:
    name = normal_name(name)
    if not name or len(name) > MAX_NAME or any(ch.isspace() or not ch.isprintable() for ch in name):
        raise AccountError(N_("a user name is 1 to 64 characters without spaces"))
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(N_("the role must be one of viewer, editor, approver, admin"))
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(N_("a password needs at least 8 characters"))
    return password


def add_user(db: Database, name: str, role: str, password: str, language: str | None = None) -> int:
    """The new user's id; LoaxaError for a bad name, role or password, or a name in use."""
    name, role = check_name(name), check_role(role)
    digest = _hash(check_password(password))
    try:
        with db.engine.begin() as conn:
            done = conn.execute(
                t.users.insert().values(
                    name=name, role=role, password_hash=digest, language=language, created_at=time.time()
                )
            )
    except IntegrityError:
        raise AccountError(N_("a user named {name} exists already"), name=name) from None
    key = done.inserted_primary_key
    assert key is not None
    return int(key[0])


def _update(db: Database, name: str, **values: Any) -> None:
    with db.engine.begin() as conn:
        done = conn.execute(t.users.update().where(t.users.c.name == normal_name(name)).values(**values))
    if done.rowcount == 0:
        raise AccountError(N_("no user named {name}"), name=normal_name(name))


def set_password(db: Database, name: str, password: str) -> None:
    _update(db, name, password_hash=_hash(check_password(password)))


def set_role(db: Database, name: str, role: str) -> None:
    _update(db, name, role=check_role(role))


def set_language(db: Database, user_id: int, language: str | None) -> None:
    with db.engine.begin() as conn:
        conn.execute(t.users.update().where(t.users.c.id == user_id).values(language=language))


def disable_user(db: Database, name: str) -> None:
    """The user can no longer log in, and their open sessions end now."""
    name = normal_name(name)
    with db.engine.begin() as conn:
        row = conn.execute(select(t.users.c.id).where(t.users.c.name == name)).first()
        if row is None:
            raise AccountError(N_("no user named {name}"), name=name)
        conn.execute(
            t.users.update()
            .where(t.users.c.id == row.id, t.users.c.disabled_at.is_(None))
            .values(disabled_at=time.time())
        )
        conn.execute(t.sessions.delete().where(t.sessions.c.user_id == row.id))


def list_users(db: Database) -> list[dict[str, Any]]:
    c = t.users.c
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(c.id, c.name, c.role, c.language, c.created_at, c.disabled_at, c.last_login_at).order_by(c.name)
        ).all()
    return [dict(r._mapping) for r in rows]


def verify(db: Database, name: str, password: str, default_language: str = "vi") -> User | None:
    """The user when the name and password are right and the user is not disabled, else None."""
    c = t.users.c
    with db.engine.connect() as conn:
        row = conn.execute(
            select(c.id, c.name, c.role, c.language, c.password_hash, c.disabled_at).where(c.name == normal_name(name))
        ).first()
    stored = row.password_hash if row is not None and row.disabled_at is None else _dummy_hash()
    try:
        with _checks:
            _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled_at is not None:
        return None  # the dummy hash matched: cannot happen with its secret text, kept for safety
    values: dict[str, Any] = {"last_login_at": time.time()}
    if _hasher.check_needs_rehash(stored):
        values["password_hash"] = _hash(password)  # argon2 parameters changed since it was made
        log.info("password of %s rehashed with the current argon2 parameters", row.name)
    with db.engine.begin() as conn:
        conn.execute(t.users.update().where(c.id == row.id).values(**values))
    return User(row.id, row.name, row.role, row.language or default_language)
