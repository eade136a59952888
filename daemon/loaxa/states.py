"""The words of the broadcast state machine, each written once.

Priorities in their order, what a bulletin and a play can be, and the events
the protocol reports. The store is the only writer of these states
(`loaxa.store.ledger`); everything else reads them from here.
"""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    """Thông tư 39's three levels of urgency, plus `low`; most urgent first."""

    EMERGENCY = "emergency"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for emergency up to 3 for low: the queue's sort key."""
        return _RANK[self]

    @classmethod
    def of_rank(cls, rank: int) -> Priority:
        return ORDER[rank]


ORDER: tuple[Priority, ...] = tuple(Priority)
PRIORITIES: tuple[str, ...] = tuple(p.value for p in ORDER)
_RANK = {p: i for i, p in enumerate(ORDER)}


class BulletinState(StrEnum):
    """A bulletin is active until its last play or its schedule is over."""

    ACTIVE = "active"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"
    DECLINED = "declined"  # the commune said no: terminal, as `cancelled`


class Approval(StrEnum):
    """The commune's answer to a bulletin that needs it (protocol 1.1); none is stored when none is needed."""

    AWAITING = "awaiting"
    APPROVED = "approved"
    DECLINED = "declined"


class PlayState(StrEnum):
    """One airing of a bulletin: as soon as possible, or one scheduled slot."""

    PENDING = "pending"
    ON_AIR = "on_air"
    DONE = "done"
    FAILED = "failed"
    MISSED = "missed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    DECLINED = "declined"  # closed like `cancelled`: a start checks the state and finds it closed

    @property
    def terminal(self) -> bool:
        return self not in OPEN_PLAYS


OPEN_PLAYS = frozenset({PlayState.PENDING, PlayState.ON_AIR})
TERMINAL_PLAYS = frozenset(set(PlayState) - OPEN_PLAYS)


class Event(StrEnum):
    """The receipts of the protocol's `event` topic."""

    RECEIVED = "received"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    SCHEDULED = "scheduled"
    STARTED = "started"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    RESUMED = "resumed"
    FAILED = "failed"
    MISSED = "missed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    PONG = "pong"
    HELD = "held"  # protocol 1.1: due, but waiting, and why
    AWAITING_APPROVAL = "awaiting_approval"  # protocol 1.1: stored, airs once the commune approves
    APPROVED = "approved"
    DECLINED = "declined"


class Outcome(StrEnum):
    """How an on-air session ended, as the player saw it."""

    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    DECLINED = "declined"
    PREEMPTED = "preempted"
    AUDIO_ERROR = "audio_error"
    SHUTDOWN = "shutdown"
