"""Station protocol v1: commands and events (see docs/protocol.md; topics are in `topics`).

`parse_command` is the only way network bytes become a command: it checks
every rule of the protocol and raises `CommandError` with a reason an
operator can read; nothing is half-applied.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from loaxa.content import MAX_TEXT, Content, check_content, content_of
from loaxa.errors import CommandError
from loaxa.states import PRIORITIES, Event, Priority
from loaxa.timing import parse_instant, parse_schedule
from loaxa.validation import describe_error, error_key

VERSION = "v1"
MAX_PAYLOAD = 64 * 1024
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
# `to` (1.1): the target the issuer meant, as the command topic names it: P, P/C, P/C/S or P/group/G.
TO_PATTERN = r"^[a-z0-9-]{1,40}(/[a-z0-9-]{1,40}){0,2}$"
__all__ = [
    "MAX_TEXT",
    "PRIORITIES",
    "Approve",
    "Bulletin",
    "Cancel",
    "Decline",
    "Ping",
    "parse_command",
    "validate_command",
    "event",
]


def _time_field(value: Any, info: ValidationInfo) -> Any:
    if value is not None:
        parse_instant(value, info.field_name or "time")
    return value


class _Command(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    issued: str | None = None
    to: str | None = Field(default=None, pattern=TO_PATTERN)
    kid: str | None = Field(default=None, min_length=1, max_length=64)
    sig: str | None = Field(default=None, min_length=1, max_length=200)

    _issued = field_validator("issued")(_time_field)

    @property
    def issued_at(self) -> datetime | None:
        return parse_instant(self.issued, "issued") if self.issued else None


class Bulletin(_Command):
    """A bulletin to read (`text`), play (`audio`) or relay (`stream`)."""

    type: Literal["bulletin"]
    rev: int = Field(default=1, ge=1, le=2**53)
    priority: Priority = Field(default=Priority.NORMAL, strict=False)  # the wire gives the name
    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    audio: dict[str, Any] | None = None
    stream: dict[str, Any] | None = None
    parts: list[Any] | None = None  # protocol 1.1: checked by `content.validate_parts_spec`
    schedule: dict[str, Any] | None = None
    repeat: int = Field(default=1, ge=1, le=10)
    gap_s: float = Field(default=3.0, ge=0.0, le=600.0)
    expires: str | None = None
    chime: bool = True
    volume: float | None = Field(default=None, ge=0.0, le=1.0)
    voice: str | None = Field(default=None, min_length=1, max_length=200)
    rate: float | None = Field(default=None, ge=0.5, le=2.0)

    _expires = field_validator("expires")(_time_field)

    @field_validator("text")
    @classmethod
    def _speakable(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty")
        return value

    @model_validator(mode="after")
    def _rules(self) -> Bulletin:
        """One content, and nested objects that keep their rules (CommandError says which)."""
        check_content(self.model_dump(include={"text", "audio", "stream", "parts"}))
        if self.schedule is not None:
            parse_schedule(self.schedule)
        return self

    @property
    def expires_at(self) -> datetime | None:
        return parse_instant(self.expires, "expires") if self.expires else None

    @property
    def content(self) -> Content:
        return content_of(self.model_dump(include={"text", "audio", "stream", "parts", "voice", "rate"}))


class Cancel(_Command):
    type: Literal["cancel"]


class Ping(_Command):
    type: Literal["ping"]


class Approve(_Command):
    """Protocol 1.1: the commune's yes to a bulletin awaiting approval."""

    type: Literal["approve"]


class Decline(_Command):
    """Protocol 1.1: the commune's no, with its reason (which the `declined` receipt carries)."""

    type: Literal["decline"]
    reason: str = Field(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        return value.strip()


Command = Bulletin | Cancel | Ping | Approve | Decline


def parse_command(payload: bytes) -> Command:
    """Decode and validate one command; `CommandError` says what is wrong."""
    return validate_command(decode_payload(payload))


def decode_payload(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(f"payload is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except CommandError:
        raise
    except (ValueError, RecursionError) as exc:
        raise CommandError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CommandError("payload must be a JSON object")
    return data


def validate_command(data: dict[str, Any]) -> Command:
    kind = data.get("type")
    models: dict[str, type[Command]] = {
        "bulletin": Bulletin,
        "cancel": Cancel,
        "ping": Ping,
        "approve": Approve,
        "decline": Decline,
    }
    model = models.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(models)
        raise CommandError(
            f"unknown command type {kind!r} (expected one of {known})" if kind is not None else "missing field: type"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CommandError("; ".join(_describe(e) for e in exc.errors()[:5])) from None
    except RecursionError:
        raise CommandError("command is nested too deeply") from None


def _describe(err: Any) -> str:
    field = error_key(err, "command")
    if err["type"] == "string_too_long" and field == "text":
        return f"text: {len(err['input'])} characters is over the {MAX_TEXT}-character limit"
    if err["type"] == "string_pattern_mismatch" and field == "id":
        return "id: must be 1-64 of A-Z a-z 0-9 . _ : -"
    return describe_error(
        err, top="command", bare_top=True, missing="missing field: {key}", unknown="unknown field: {key}"
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key appears twice: readers differ on which value wins.

    Python keeps the last, other tools and people reading the raw text the
    first; a signed command with two `text` keys would verify and air the
    one nobody looked at.
    """
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise CommandError(f"duplicate key {key[:64]!r} in the command (each key may appear once)")
        data[key] = value
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


def event(
    kind: Event,
    station: str,
    id: str | None,
    rev: int | None = None,
    detail: str | None = None,
    occurrence: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """One receipt as the protocol writes it."""
    body: dict[str, Any] = {"id": id, "rev": rev, "event": Event(kind).value, "at": at or now_iso(), "station": station}
    if occurrence is not None:
        body["occurrence"] = occurrence
    if detail is not None:
        body["detail"] = detail
    return body
