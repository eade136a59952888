"""What a bulletin carries, as types: `Text | Audio | Stream | Parts`.

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
from loaxa.sources.failover import urls_of
from loaxa.sources.recorded import validate_audio_spec
from loaxa.sources.stream import validate_stream_spec

KINDS = ("text", "audio", "stream", "parts")
MAX_PARTS = 20
MAX_TEXT = 20_000  # characters of text in a bulletin, all its parts together
# A multi-part bulletin resumes at `part * PART_STRIDE + sentence`: one number, as a text's sentence is.
PART_STRIDE = 100_000


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
    """A live radio stream relayed for `duration_s` of wall-clock time, from the first of `urls` that plays."""

    kind: Literal["stream"] = "stream"
    urls: tuple[str, ...]
    duration_s: float

    @property
    def url(self) -> str:
        """The first URL: the one the issuer wants on air."""
        return self.urls[0]


class Parts(_Content):
    """Protocol 1.1: texts and recordings aired in order in one on-air session, one chime pair."""

    kind: Literal["parts"] = "parts"
    parts: tuple[Text | Audio, ...]


class Live(_Content):
    """The station's own microphone or line input, on air until the technician stops it (`loaxa live`).

    Never from the network: the wire has no `live` field; the ledger stores
    it for the technician (`Ledger.live`).
    """

    kind: Literal["live"] = "live"
    input: str


Content = Text | Audio | Stream | Parts | Live


def check_content(fields: dict[str, Any]) -> Content:
    """The one content of a bulletin's wire fields; CommandError says what is wrong."""
    given = [kind for kind in KINDS if fields.get(kind) is not None]
    if len(given) != 1:
        raise CommandError(f"exactly one of {', '.join(KINDS)} is required (got {', '.join(given) or 'none'})")
    if given[0] == "audio":
        validate_audio_spec(fields["audio"])
    elif given[0] == "stream":
        validate_stream_spec(fields["stream"])
    elif given[0] == "parts":
        validate_parts_spec(fields["parts"])
    return content_of(fields)


def validate_parts_spec(obj: Any) -> None:
    """Check `parts`: 1-20 of `{text, voice?, rate?}` or `{audio: {url, sha256}}`; CommandError says which."""
    if not isinstance(obj, list) or not 1 <= len(obj) <= MAX_PARTS:
        raise CommandError(f"parts must be a list of 1-{MAX_PARTS} parts")
    total = 0
    for n, part in enumerate(obj, 1):
        where = f"parts.{n}"
        if not isinstance(part, dict) or len([k for k in ("text", "audio") if k in part]) != 1:
            raise CommandError(f"{where}: each part is {{text, voice?, rate?}} or {{audio: {{url, sha256}}}}")
        if "audio" in part:
            if set(part) != {"audio"}:
                raise CommandError(f"{where}: a recorded part has only 'audio'")
            try:
                validate_audio_spec(part["audio"])
            except CommandError as exc:
                raise CommandError(f"{where}.{exc}") from None
            continue
        unknown = set(part) - {"text", "voice", "rate"}
        if unknown:
            raise CommandError(f"{where}: unknown field: {sorted(unknown)[0]}")
        text, voice, rate = part["text"], part.get("voice"), part.get("rate")
        if not isinstance(text, str) or not text.strip():
            raise CommandError(f"{where}.text: must be text to read")
        total += len(text)
        if voice is not None and (not isinstance(voice, str) or not 1 <= len(voice) <= 200):
            raise CommandError(f"{where}.voice: must be a voice name of 1-200 characters")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.5 <= rate <= 2):
            raise CommandError(f"{where}.rate: must be a number from 0.5 to 2")
    if total > MAX_TEXT:
        raise CommandError(f"parts: {total} characters of text is over the {MAX_TEXT}-character limit")


def resume_point(body: dict[str, Any], position: int) -> str:
    """Where a play resumes, in words: `sentence 3`, or `part 2, sentence 1` for a multi-part bulletin."""
    if body.get("parts") is None:
        return f"sentence {position + 1}"
    part, sentence = divmod(position, PART_STRIDE)
    return f"part {part + 1}, sentence {sentence + 1}"


def content_of(body: dict[str, Any]) -> Content:
    """The typed content of a validated bulletin body (stored bodies were checked on arrival)."""
    if body.get("text") is not None:
        return Text.model_construct(text=body["text"], voice=body.get("voice"), rate=body.get("rate"))
    if body.get("live") is not None:
        return Live.model_construct(input=body["live"]["input"])
    if body.get("audio") is not None:
        spec = body["audio"]
        return Audio.model_construct(url=spec["url"], sha256=spec["sha256"])
    if body.get("parts") is not None:
        return Parts.model_construct(parts=tuple(_part_of(p) for p in body["parts"]))
    spec = body["stream"]
    return Stream.model_construct(urls=urls_of(spec), duration_s=float(spec["duration_s"]))


def _part_of(part: dict[str, Any]) -> Text | Audio:
    if "audio" in part:
        return Audio.model_construct(url=part["audio"]["url"], sha256=part["audio"]["sha256"])
    return Text.model_construct(text=part["text"], voice=part.get("voice"), rate=part.get("rate"))
