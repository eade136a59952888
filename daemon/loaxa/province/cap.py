"""CAP 1.2 alerts (OASIS Common Alerting Protocol) to station commands.

``parse_cap`` reads one ``<alert>`` document safely into frozen dataclasses;
``cap_to_commands`` turns it into the protocol's ``bulletin`` or ``cancel``
command. The mapping (id, rev, priority, schedule, text) is documented in
docs/cap.md; the tables below are the source of truth.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from loaxa.errors import LoaxaError
from loaxa.province.cap_text import assemble
from loaxa.states import Priority

log = logging.getLogger(__name__)

NS = "urn:oasis:names:tc:emergency:cap:1.2"
MAX_DOCUMENT_BYTES = 1_048_576

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown", "Very Likely")

# Priority is the higher of the two ranks below ("Immediate or Extreme/Severe
# → emergency", …), except urgency Past: no action is needed any more, so it
# never wakes the commune. The full 5×5 table is in docs/cap.md.
_URGENCY_RANK = {"Immediate": 3, "Expected": 2, "Future": 1, "Past": 0, "Unknown": 0}
_SEVERITY_RANK = {"Extreme": 3, "Severe": 3, "Moderate": 2, "Minor": 1, "Unknown": 0}

# rev counts seconds of <sent> from this epoch: later sent, higher rev, and it
# stays below 2**31 until 2088 for receivers that store 32-bit integers.
REV_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_MAX_REV = 2**31 - 1
_NOT_LIVE = {"Test", "Exercise", "Draft"}


class CapError(LoaxaError):
    """A CAP document is malformed, unsafe, or cannot become a command."""


class CapNotLive(CapError):
    """A valid alert that must not be aired: test, exercise, draft or expired."""


@dataclass(frozen=True)
class CapReference:
    """One ``sender,identifier,sent`` entry of ``<references>``."""

    sender: str
    identifier: str
    sent: datetime


@dataclass(frozen=True)
class CapInfo:
    """One ``<info>`` block: the alert in one language."""

    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    areas: tuple[str, ...] = ()


@dataclass(frozen=True)
class CapAlert:
    """One ``<alert>`` document."""

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    references: tuple[CapReference, ...] = ()
    note: str | None = None
    infos: tuple[CapInfo, ...] = ()


# ---------------------------------------------------------------- parsing


def parse_cap(xml: bytes) -> CapAlert:
    """Parse one CAP 1.2 ``<alert>``; raise CapError with the reason if not."""
    if not isinstance(xml, (bytes, bytearray)):
        raise CapError(f"CAP document must be bytes, not {type(xml).__name__}")
    if len(xml) > MAX_DOCUMENT_BYTES:
        raise CapError(f"CAP document is {len(xml)} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    if not xml.strip():
        raise CapError("CAP document is empty")
    root = _safe_parse(bytes(xml))
    if root.tag != _q("alert"):
        ns, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
        if local == "alert" and ns != NS:
            raise CapError(f"<alert> is in namespace {ns or '(none)'!r}; expected CAP 1.2 {NS!r}")
        raise CapError(f"root element is <{local}>, not a CAP <alert>")
    return _alert(root)


def _safe_parse(data: bytes) -> Element:
    """Expat with every DTD feature refused: no entities, no external fetches.

    Refusing the DOCTYPE declaration itself stops billion-laughs and external
    entity attacks before any declaration is read, whatever the encoding.
    """
    builder = TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse(*_: object) -> NoReturn:
        raise CapError("CAP document has a DOCTYPE or entity declaration; refused for safety")

    def start(name: str, attrs: dict[str, str]) -> None:
        builder.start("{" + name if "}" in name else name, attrs)

    def end(name: str) -> None:
        builder.end("{" + name if "}" in name else name)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        return builder.close()
    except CapError:
        raise
    except expat.ExpatError as exc:
        raise CapError(f"CAP document is not well-formed XML: {exc}") from None
    except (ValueError, LookupError, UnicodeError, AssertionError) as exc:
        # Unknown or broken encodings surface as codec errors from expat.
        raise CapError(f"CAP document cannot be decoded: {exc}") from None


def _q(local: str) -> str:
    return "{" + NS + "}" + local


def _text(parent: Element, local: str) -> str | None:
    child = parent.find(_q(local))
    if child is None:
        return None
    value = "".join(child.itertext()).strip()
    return value or None


def _texts(parent: Element, local: str) -> tuple[str, ...]:
    values = ("".join(c.itertext()).strip() for c in parent.findall(_q(local)))
    return tuple(v for v in values if v)


def _required(parent: Element, local: str, where: str) -> str:
    value = _text(parent, local)
    if value is None:
        raise CapError(f"<{where}> has no <{local}> (required by CAP 1.2)")
    return value


def _choice(parent: Element, local: str, where: str, allowed: tuple[str, ...]) -> str:
    value = _required(parent, local, where)
    if value not in allowed:
        raise CapError(f"<{local}> is {value!r}; CAP 1.2 allows {', '.join(allowed)}")
    return value


def _time(value: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CapError(f"<{what}> {value!r} is not a date-time like 2025-09-14T08:00:00+07:00") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CapError(f"<{what}> {value!r} has no time zone offset")
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise CapError(f"<{what}> {value!r} is out of range") from None
    return moment


def _optional_time(parent: Element, local: str) -> datetime | None:
    value = _text(parent, local)
    return None if value is None else _time(value, local)


def _alert(root: Element) -> CapAlert:
    msg_type = _choice(root, "msgType", "alert", MSG_TYPES)
    refs_text = _text(root, "references")
    return CapAlert(
        identifier=_required(root, "identifier", "alert"),
        sender=_required(root, "sender", "alert"),
        sent=_time(_required(root, "sent", "alert"), "sent"),
        status=_choice(root, "status", "alert", STATUSES),
        msg_type=msg_type,
        scope=_choice(root, "scope", "alert", SCOPES),
        references=_references(refs_text) if refs_text else (),
        note=_text(root, "note"),
        infos=tuple(_info(i) for i in root.findall(_q("info"))),
    )


def _references(text: str) -> tuple[CapReference, ...]:
    refs = []
    for entry in text.split():
        parts = entry.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError(f"<references> entry {entry!r} is not sender,identifier,sent")
        refs.append(CapReference(parts[0], parts[1], _time(parts[2], "references")))
    return tuple(refs)


def _info(el: Element) -> CapInfo:
    categories = _texts(el, "category")
    if not categories:
        raise CapError("<info> has no <category> (required by CAP 1.2)")
    return CapInfo(
        language=_text(el, "language") or "en-US",
        categories=categories,
        event=_required(el, "event", "info"),
        urgency=_choice(el, "urgency", "info", URGENCIES),
        severity=_choice(el, "severity", "info", SEVERITIES),
        certainty=_choice(el, "certainty", "info", CERTAINTIES),
        effective=_optional_time(el, "effective"),
        onset=_optional_time(el, "onset"),
        expires=_optional_time(el, "expires"),
        sender_name=_text(el, "senderName"),
        headline=_text(el, "headline"),
        description=_text(el, "description"),
        instruction=_text(el, "instruction"),
        areas=tuple(d for a in el.findall(_q("area")) if (d := _text(a, "areaDesc"))),
    )


# ---------------------------------------------------------------- mapping


def priority_for(urgency: str, severity: str) -> str:
    """Protocol priority for a CAP urgency and severity (table in docs/cap.md)."""
    if urgency == "Past":
        return "low"
    rank = max(_URGENCY_RANK.get(urgency, 0), _SEVERITY_RANK.get(severity, 0))
    return Priority.of_rank(Priority.LOW.rank - rank).value  # CAP ranks count up to the most urgent


def bulletin_id(sender: str, identifier: str) -> str:
    """Stable bulletin id of the CAP message (sender, identifier)."""
    digest = hashlib.sha256(f"{sender},{identifier}".encode()).hexdigest()
    return "cap-" + digest[:16]


def rev_for(sent: datetime) -> int:
    """Monotone in ``sent``: whole seconds since REV_EPOCH, plus 1, at least 1."""
    rev = max(1, int((sent - REV_EPOCH).total_seconds()) + 1)
    if rev > _MAX_REV:
        raise CapError(f"<sent> {sent.isoformat()} is too far in the future")
    return rev


def original_of(alert: CapAlert) -> tuple[str, str, datetime]:
    """(sender, identifier, sent) of the first message of the alert's thread.

    An Alert is its own original. An Update or Cancel names earlier messages
    in ``<references>``; the earliest one is the original (issuers list the
    whole thread there, as CAP 1.2 recommends).
    """
    if alert.msg_type == "Alert":
        return alert.sender, alert.identifier, alert.sent
    if not alert.references:
        raise CapError(f"{alert.msg_type} has no <references>: cannot tell which alert it changes")
    first = min(alert.references, key=lambda r: (r.sent, r.sender, r.identifier))
    return first.sender, first.identifier, first.sent


def pick_info(alert: CapAlert, language: str = "vi") -> CapInfo:
    """The first ``<info>`` in ``language`` (``vi`` matches vi and vi-VN)."""
    want = language.lower()
    for info in alert.infos:
        lang = info.language.lower().replace("_", "-")
        if lang == want or lang.startswith(want + "-"):
            return info
    present = ", ".join(i.language for i in alert.infos) or "none"
    name = "Vietnamese " if want == "vi" else ""
    raise CapError(f"no {name}<info> block in language {language!r} (blocks present: {present})")


def cap_to_commands(alert: CapAlert, now: datetime, language: str = "vi") -> list[dict[str, Any]]:
    """Protocol commands for one alert: [] when there is nothing to air.

    Raises CapNotLive for Test/Exercise/Draft and for an expired alert, so
    the caller says why nothing is published; CapError when it cannot map.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if alert.status in _NOT_LIVE:
        raise CapNotLive(f"status is {alert.status}: never aired live")
    if alert.status == "System" or alert.msg_type in ("Ack", "Error"):
        log.info("CAP %s %s/%s: nothing to air", alert.identifier, alert.status, alert.msg_type)
        return []
    if alert.scope != "Public":
        log.warning("CAP %s has scope %s; the loudspeaker makes it public", alert.identifier, alert.scope)
    sender, identifier, first_sent = original_of(alert)
    bid = bulletin_id(sender, identifier)
    issued = alert.sent.isoformat()
    if alert.msg_type == "Cancel":
        return [{"type": "cancel", "id": bid, "issued": issued}]
    if alert.msg_type == "Update" and alert.sent <= first_sent:
        raise CapError(
            f"Update sent {issued} is not later than the alert it updates "
            f"({first_sent.isoformat()}); it could not supersede it"
        )
    info = pick_info(alert, language)
    if info.expires is not None and info.expires <= now:
        raise CapNotLive(f"alert expired at {info.expires.isoformat()}")
    if info.expires is not None and info.effective is not None and info.expires <= info.effective:
        raise CapError(f"<expires> {info.expires.isoformat()} is not after <effective>")
    lead = "Tin cập nhật" if alert.msg_type == "Update" else None
    text = assemble(info.headline or info.event, list(info.areas), info.description, info.instruction, lead)
    command: dict[str, Any] = {
        "type": "bulletin",
        "id": bid,
        "rev": rev_for(alert.sent),
        "priority": priority_for(info.urgency, info.severity),
        "text": text,
        "issued": issued,
    }
    if info.expires is not None:
        command["expires"] = info.expires.isoformat()
    if info.effective is not None and info.effective > now:
        # Not valid yet: read it when it takes effect. Onset (when the hazard
        # starts) never delays a warning; it must be heard before.
        command["schedule"] = {"at": info.effective.isoformat()}
    return [command]
