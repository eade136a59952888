"""An Inbox on a real store for in-process tests and benchmarks: no signatures, no rate limit, no broker."""

from __future__ import annotations

from loaxa.config import SecuritySettings
from loaxa.inbox import Inbox
from loaxa.schedule import Scheduler
from loaxa.security import RateLimiter, Verifier
from loaxa.store import Ledger


def open_inbox(ledger: Ledger, scheduler: Scheduler) -> Inbox:
    """An Inbox (not started: call `handle` directly) that takes every well-formed command."""
    return Inbox(
        ledger=ledger,
        scheduler=scheduler,
        verifier=Verifier(SecuritySettings()),
        limiter=RateLimiter(10**9),
        max_queue=10**6,
        on_queued=lambda b: None,
        stop_play=lambda issuer, id, reason: False,
        respond=lambda topic, payload, corr: None,
    )
