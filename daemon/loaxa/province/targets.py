"""Who a command goes to: one station, a commune, a group, or a whole province.

A `Target` names its command topic and tells whether a station (known by its
retained `state`) is addressed by it, which is how the operator tools count
the stations they expect receipts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loaxa.errors import LoaxaError
from loaxa.topics import GROUP, SLUG, command_topic
from loaxa.topics import Scope as Kind

SHAPES: dict[str, tuple[int, str]] = {
    "station": (3, "PROVINCE/COMMUNE/STATION"),
    "commune": (2, "PROVINCE/COMMUNE"),
    "province": (1, "PROVINCE"),
    "group": (2, "PROVINCE/GROUP"),
}


@dataclass(frozen=True)
class Target:
    kind: Kind
    parts: tuple[str, ...]

    @property
    def province(self) -> str:
        return self.parts[0]

    def topic(self, prefix: str) -> str:
        """The command topic that reaches every station of this target."""
        return command_topic(prefix, self.kind, self.parts)

    def covers(self, station: str, state: dict[str, Any] | None = None) -> bool | None:
        """Whether `station` (`p/c/s`) is addressed; None when a group's members are unknown."""
        p, c, s = station.split("/")
        if p != self.province:
            return False
        if self.kind == "province":
            return True
        if self.kind == "commune":
            return c == self.parts[1]
        if self.kind == "station":
            return (c, s) == self.parts[1:]
        groups = (state or {}).get("groups")
        if not isinstance(groups, list):
            return None  # the station does not advertise its groups
        return self.parts[1] in groups

    def __str__(self) -> str:
        return f"{self.kind} {'/'.join(self.parts)}"


def parse_target(kind: str, value: str) -> Target:
    """`--station hn/ba-vi/loa-1` and friends; LoaxaError with the expected shape."""
    count, shape = SHAPES[kind]
    parts = tuple(value.strip().split("/"))
    if len(parts) != count or not all(SLUG.match(p) for p in parts):
        raise LoaxaError(f"--{kind} must be {shape} (slugs of a-z, 0-9 and '-'), got {value!r}")
    if kind in ("commune", "station") and parts[1] == GROUP:
        raise LoaxaError(f"--{kind} {value!r}: 'group' is not a commune name (it is the group topic level)")
    return Target(kind, parts)  # type: ignore[arg-type]
