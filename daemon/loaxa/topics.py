"""The topic layout of the station protocol, built and parsed in one place.

    {prefix}/{province}/cmd                      every station of a province
    {prefix}/{province}/{commune}/cmd            every station of a commune
    {prefix}/{province}/{commune}/{station}/cmd  one station
    {prefix}/{province}/group/{group}/cmd        the stations of a group
    {prefix}/{province}/{commune}/{station}/state|event
    {prefix}/{province}/{commune}/{station}/response/...  MQTT 5 answers (ping)

A command's `to` (protocol 1.1) is its command topic without the prefix and
`/cmd`: `P`, `P/C`, `P/C/S` or `P/group/G` (`target_of`).

Builders take `ANY` (`+`) for a level, so the subscription filters of the
operator tools and the broker ACL patterns are the same shapes as the
topics themselves. `group` is a reserved level: no commune is named so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

SLUG = re.compile(r"^[a-z0-9-]{1,40}$")
ANY = "+"  # one topic level, in a subscription filter or an ACL line
REST = "#"  # every level below, in a filter or an ACL line
RESPONSE = "response"
MAX_RESPONSE_TOPIC = 256  # characters; a requester needs a few levels, not a novel
GROUP = "group"
Scope = Literal["province", "commune", "station", "group"]
Kind = Literal["cmd", "state", "event"]
LEVELS: dict[str, int] = {"province": 1, "commune": 2, "station": 3, "group": 2}
KINDS: tuple[Kind, ...] = ("cmd", "state", "event")


def command_topic(prefix: str, scope: Scope, parts: Sequence[str]) -> str:
    """The command topic of a province `(p,)`, commune `(p, c)`, station `(p, c, s)` or group `(p, g)`."""
    _check_levels(scope, parts)
    if scope == "group":
        return f"{prefix}/{parts[0]}/{GROUP}/{parts[1]}/cmd"
    return f"{prefix}/{'/'.join(parts)}/cmd"


def station_topic(prefix: str, province: str, commune: str, station: str, kind: Kind) -> str:
    """`cmd`, `state` or `event` of one station."""
    if kind not in KINDS:
        raise ValueError(f"a station topic ends in one of {', '.join(KINDS)}, not {kind!r}")
    return f"{prefix}/{province}/{commune}/{station}/{kind}"


def station_commands(
    prefix: str, province: str, commune: str, station: str, groups: Iterable[str] = ()
) -> tuple[str, ...]:
    """Every command topic that addresses one station: province, commune, its own, then each group's."""
    return (
        command_topic(prefix, "province", (province,)),
        command_topic(prefix, "commune", (province, commune)),
        command_topic(prefix, "station", (province, commune, station)),
        *(command_topic(prefix, "group", (province, g)) for g in groups),
    )


def province_commands(prefix: str, province: str) -> tuple[str, ...]:
    """Filters matching every command topic of a province (what its operator may write)."""
    return (
        command_topic(prefix, "province", (province,)),
        command_topic(prefix, "commune", (province, ANY)),
        command_topic(prefix, "station", (province, ANY, ANY)),
        command_topic(prefix, "group", (province, ANY)),
    )


def province_reports(prefix: str, province: str, *, states: bool = True, events: bool = True) -> tuple[str, ...]:
    """Filters matching the `state` and/or `event` of every station of a province."""
    wanted: dict[Kind, bool] = {"state": states, "event": events}
    kinds = [k for k, on in wanted.items() if on]
    return tuple(station_topic(prefix, province, ANY, ANY, k) for k in kinds)


def response_root(prefix: str, province: str, commune: str, station: str) -> str:
    """The level under which a station may answer MQTT 5 requests: `{prefix}/{p}/{c}/{s}/response`."""
    return f"{prefix}/{province}/{commune}/{station}/{RESPONSE}"


def province_responses(prefix: str, province: str) -> str:
    """The filter matching every station's response namespace in a province (what its operator may read)."""
    return f"{response_root(prefix, province, ANY, ANY)}/{REST}"


def response_problem(topic: str, root: str) -> str | None:
    """Why a requester's response topic is not one the station answers on; None when it is.

    Allowed: `root/` followed by one or more non-empty levels without
    wildcards, at most `MAX_RESPONSE_TOPIC` characters in all. Anything else
    (the station's own `state`, another station's topics, a filter) is refused
    before a byte is published.
    """
    where = f"must be under {root}/ (one or more levels, no wildcards)"
    if not isinstance(topic, str) or not topic:
        return f"response topic is empty; it {where}"
    if len(topic) > MAX_RESPONSE_TOPIC:
        return f"response topic is {len(topic)} characters, over the {MAX_RESPONSE_TOPIC}-character limit"
    if any(c in topic for c in "+#") or any(not c.isprintable() for c in topic):
        return f"response topic {topic!r} holds a wildcard or a control character; it {where}"
    rest = topic.removeprefix(root + "/")
    if rest == topic or not rest or any(not level for level in rest.split("/")):
        return f"response topic {topic!r} is not this station's to answer on; it {where}"
    return None


def target_of(address: Address) -> str:
    """The `to` that names the stations a command topic reaches: `p`, `p/c`, `p/c/s` or `p/group/g`."""
    if address.scope == "group":
        return f"{address.parts[0]}/{GROUP}/{address.parts[1]}"
    return address.path


def target_of_topic(topic: str, prefix: str) -> str | None:
    """`target_of` the command topic `topic`; None when it is not a command topic under `prefix`."""
    address = parse_topic(topic, prefix)
    if address is None or address.kind != "cmd":
        return None
    return target_of(address)


class Topics:
    """The topics one station subscribes to (`commands`) and publishes on (`state`, `event`, `response`)."""

    def __init__(self, prefix: str, province: str, commune: str, station: str, groups: tuple[str, ...] = ()):
        self.prefix = prefix
        self.state = station_topic(prefix, province, commune, station, "state")
        self.event = station_topic(prefix, province, commune, station, "event")
        self.response = response_root(prefix, province, commune, station)
        self.commands = station_commands(prefix, province, commune, station, groups)


@dataclass(frozen=True)
class Address:
    """What a topic names: a scope with its slugs (as in `command_topic`) and the kind of message."""

    scope: Scope
    parts: tuple[str, ...]
    kind: Kind

    @property
    def path(self) -> str:
        """`p/c/s` of a station (`p/g` of a group, and so on)."""
        return "/".join(self.parts)

    def topic(self, prefix: str) -> str:
        if self.kind == "cmd":
            return command_topic(prefix, self.scope, self.parts)
        p, c, s = self.parts
        return station_topic(prefix, p, c, s, self.kind)


def parse_topic(topic: str, prefix: str) -> Address | None:
    """The address of a protocol topic under `prefix`; None for anything else.

    Every level must be a slug, so filters (`+`, `#`), empty levels and
    other shapes are refused rather than guessed at.
    """
    if not topic.startswith(prefix + "/"):
        return None
    *levels, last = topic[len(prefix) + 1 :].split("/")
    if last not in KINDS or not levels or not all(SLUG.match(level) for level in levels):
        return None
    kind = last
    if len(levels) == 3 and levels[1] == GROUP:
        return Address("group", (levels[0], levels[2]), kind) if kind == "cmd" else None
    scope: Scope | None = {1: "province", 2: "commune", 3: "station"}.get(len(levels))  # type: ignore[assignment]
    if scope is None or (kind != "cmd" and scope != "station") or (len(levels) > 1 and levels[1] == GROUP):
        return None
    return Address(scope, tuple(levels), kind)


def station_of(topic: str, prefix: str) -> tuple[str, str] | None:
    """`(p/c/s, "state"|"event")` for a station's report topic under `prefix`, else None."""
    address = parse_topic(topic, prefix)
    if address is None or address.kind == "cmd":
        return None
    return address.path, address.kind


def _check_levels(scope: str, parts: Sequence[str]) -> None:
    if LEVELS.get(scope) != len(parts):
        raise ValueError(f"a {scope} command topic takes {LEVELS.get(scope, '?')} level(s), got {len(parts)}")
