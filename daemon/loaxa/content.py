"""What a bulletin carries, as types: `Text | Audio | Stream`.

The wire format keeps the protocol's fields (`text`, `audio`, `stream`); a
bulletin's `content` is one of these frozen models, and each kind has one
source class in `loaxa.sources.registry` that turns it into sound. A new
kind (the multi-part bulletins of protocol 1.1) is one model here, one
source class there, and their tests.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from loaxa.errors import CommandError
from loaxa.sources.recorded import validate_audio_spec
from loaxa.sources.stream import validate_stream_spec

KINDS = ("text", "audio", "stream")


class _Content(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Text(_Content):
    """Text the station's voice reads, after normalisation."""

    kind: Literal["text"] = "text"
    text: str
    voice: str | None = None
    rate: float | None = None


class Audio(_Content):
    """A recorded file, fetched once and checked against its SHA-256."""

    kind: Literal["audio"] = "audio"
    url: str
    sha256: str


class Stream(_Content):
    """A live radio stream relayed for `duration_s` of wall-clock time."""

    kind: Literal["stream"] = "stream"
    url: str
    duration_s: float


class Live(_Content):
    """The station's own microphone or line input, on air until the technician stops it (`loaxa live`).

    Never from the network: the wire has no `live` field; the ledger stores
    it for the technician (`Ledger.live`).
    """

    kind: Literal["live"] = "live"
    input: str


Content = Text | Audio | Stream | Live


def check_content(fields: dict[str, Any]) -> Content:
    """The one content of a bulletin's wire fields; CommandError says what is wrong."""
    given = [kind for kind in KINDS if fields.get(kind) is not None]
    if len(given) != 1:
        raise CommandError(f"exactly one of {', '.join(KINDS)} is required (got {', '.join(given) or 'none'})")
    if given[0] == "audio":
        validate_audio_spec(fields["audio"])
    elif given[0] == "stream":
        validate_stream_spec(fields["stream"])
    return content_of(fields)


def content_of(body: dict[str, Any]) -> Content:
    """The typed content of a validated bulletin body (stored bodies were checked on arrival)."""
    if body.get("text") is not None:
        return Text.model_construct(text=body["text"], voice=body.get("voice"), rate=body.get("rate"))
    if body.get("live") is not None:
        return Live.model_construct(input=body["live"]["input"])
    if body.get("audio") is not None:
        spec = body["audio"]
        return Audio.model_construct(url=spec["url"], sha256=spec["sha256"])
    spec = body["stream"]
    return Stream.model_construct(url=spec["url"], duration_s=float(spec["duration_s"]))
