"""The fleet as the province sees it: one view per station from its retained `state`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from loaxa.province.client import Message
from loaxa.province.targets import Target


@dataclass
class StationView:
    """What the last `state` of one station says."""

    station: str
    state: dict[str, Any] = field(default_factory=dict)
    seen_live: float | None = None  # monotonic time of a non-retained state

    @property
    def online(self) -> bool:
        return self.state.get("online") is True

    @property
    def voice(self) -> str:
        voice = self.state.get("voice")
        if not isinstance(voice, dict):
            return "?"
        name = str(voice.get("name", "?"))
        return f"{name} (fallback: {voice.get('reason') or 'yes'})" if voice.get("fallback") else name

    @property
    def fallback(self) -> bool:
        voice = self.state.get("voice")
        return isinstance(voice, dict) and bool(voice.get("fallback"))

    @property
    def clock(self) -> str:
        synced = self.state.get("clock_synced")
        return "synced" if synced is True else "NOT synced" if synced is False else "?"

    @property
    def on_air(self) -> str | None:
        value = self.state.get("on_air")
        return str(value) if value else None

    def last_seen(self, now_mono: float | None = None) -> str:
        """When the station was last heard from, as well as a retained message can tell."""
        at = self.state.get("at")  # a station that stamps its state
        if isinstance(at, str):
            return at
        if self.seen_live is not None:
            ago = (now_mono or time.monotonic()) - self.seen_live
            return f"{ago:.0f} s ago"
        # A retained online state is refreshed every 60 s while connected, and
        # the broker replaces it with the Last Will when the link drops.
        return "connected" if self.online else "earlier (offline)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "station": self.station,
            "online": self.online,
            "voice": self.state.get("voice"),
            "clock_synced": self.state.get("clock_synced"),
            "on_air": self.on_air,
            "queue": self.state.get("queue"),
            "last_command_at": self.state.get("last_command_at"),
            "uptime_s": self.state.get("uptime_s"),
            "version": self.state.get("version"),
            "groups": self.state.get("groups"),
            "last_seen": self.last_seen(),
        }


class Fleet:
    """Station views keyed by `p/c/s`, updated from the operator's feed."""

    def __init__(self) -> None:
        self.stations: dict[str, StationView] = {}

    def update(self, msg: Message) -> StationView | None:
        if msg.kind != "state":
            return None
        view = self.stations.setdefault(msg.station, StationView(msg.station))
        view.state = msg.body
        if not msg.retained:
            view.seen_live = msg.arrived
        return view

    def covered(self, targets: list[Target]) -> tuple[list[StationView], int]:
        """Known stations any target addresses, and how many might be (group unknown)."""
        hits, unknown = [], 0
        for path in sorted(self.stations):
            view = self.stations[path]
            answers = [t.covers(path, view.state) for t in targets]
            if any(a is True for a in answers):
                hits.append(view)
            elif any(a is None for a in answers):
                unknown += 1
        return hits, unknown

    def sorted(self) -> list[StationView]:
        return [self.stations[k] for k in sorted(self.stations)]
