"""Rules for a bulletin's `schedule`, `audio` and `stream` objects."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loaxa.protocol import Bulletin


def check_content(bulletin: Bulletin) -> None:
    """Raise ValueError with the reason when a nested object breaks a rule."""
    if bulletin.schedule is not None and not bulletin.schedule:
        raise ValueError("schedule: must not be empty (omit it to play as soon as possible)")
