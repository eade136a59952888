"""What the ingest takes and gives: a message off the broker, a batch's result, and the rules' constants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loaxa.jsonwire import compact

# A receipt's name → the bulletin status it leaves; those absent leave the status as it was.
STATUS_OF = {
    e: e
    for e in [
        "received",
        "rejected",
        "scheduled",
        "started",
        "finished",
        "interrupted",
        "resumed",
        "failed",
        "missed",
        "expired",
        "cancelled",
        "superseded",
        "held",
        "awaiting_approval",
        "approved",
        "declined",
    ]
}
# The state fields whose change is recorded in `station_changes` (`at`, `uptime_s`, `queue`... change always).
SIGNIFICANT = ("online", "version", "voice", "clock_synced", "audio", "amplifier", "storage", "groups")


@dataclass(frozen=True)
class Incoming:
    """One state or event as it came off the broker."""

    station: str  # p/c/s
    kind: str  # "state" or "event"
    body: dict[str, Any]
    retained: bool
    arrived: float  # epoch seconds
    payload: str | None = None  # the JSON text as it came; stored as the event's payload (else `body` re-encoded)

    @property
    def text(self) -> str:
        return self.payload if self.payload is not None else compact(self.body)


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    states: int = 0
    changes: int = 0
    renumbered: int = 0  # a seq already stored with another event: kept without its seq
    gaps: list[tuple[str, int, int]] = field(default_factory=list)


def epoch_of(value: object) -> float | None:
    """An ISO 8601 time with its offset as epoch seconds; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def voice_of(voice: dict[str, Any]) -> str | None:
    """`engine:name` (`piper:vi_VN-vais1000-medium`), once, whether or not the name already says the engine."""
    engine, name = voice.get("engine"), voice.get("name")
    if not isinstance(name, str):
        return engine if isinstance(engine, str) else None
    return name if not isinstance(engine, str) or name.startswith(f"{engine}:") else f"{engine}:{name}"[:200]
