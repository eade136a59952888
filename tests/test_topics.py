"""The topic layout: every shape built, parsed back, and malformed topics refused."""

from __future__ import annotations

import pytest

from loaxa.topics import (
    ANY,
    Address,
    Topics,
    command_topic,
    parse_topic,
    province_commands,
    province_reports,
    station_commands,
    station_of,
    station_topic,
)

P = "loaxa/v1"

SHAPES = [
    (Address("province", ("hue",), "cmd"), "loaxa/v1/hue/cmd"),
    (Address("commune", ("hue", "phu-vang"), "cmd"), "loaxa/v1/hue/phu-vang/cmd"),
    (Address("station", ("hue", "phu-vang", "loa-1"), "cmd"), "loaxa/v1/hue/phu-vang/loa-1/cmd"),
    (Address("group", ("hue", "coastal"), "cmd"), "loaxa/v1/hue/group/coastal/cmd"),
    (Address("station", ("hue", "phu-vang", "loa-1"), "state"), "loaxa/v1/hue/phu-vang/loa-1/state"),
    (Address("station", ("hue", "phu-vang", "loa-1"), "event"), "loaxa/v1/hue/phu-vang/loa-1/event"),
]


@pytest.mark.parametrize(("address", "topic"), SHAPES, ids=[t for _, t in SHAPES])
def test_every_shape_builds_and_parses_back(address: Address, topic: str) -> None:
    assert address.topic(P) == topic
    assert parse_topic(topic, P) == address


@pytest.mark.parametrize("prefix", ["loaxa/v1", "x", "tinh/hue/loaxa/v1"])
def test_round_trip_under_any_prefix(prefix: str) -> None:
    for address, _ in SHAPES:
        assert parse_topic(address.topic(prefix), prefix) == address


def test_builders_agree_with_the_documented_layout() -> None:
    assert command_topic(P, "province", ("hue",)) == "loaxa/v1/hue/cmd"
    assert command_topic(P, "group", ("hue", "flood")) == "loaxa/v1/hue/group/flood/cmd"
    assert station_topic(P, "hue", "pv", "loa-1", "state") == "loaxa/v1/hue/pv/loa-1/state"
    with pytest.raises(ValueError):
        command_topic(P, "station", ("hue", "pv"))
    with pytest.raises(ValueError):
        station_topic(P, "hue", "pv", "loa-1", "status")  # type: ignore[arg-type]


def test_a_station_subscribes_to_every_topic_that_addresses_it_and_nothing_else() -> None:
    t = Topics(P, "hue", "phu-vang", "loa-1", ("coastal", "flood"))
    assert t.commands == station_commands(P, "hue", "phu-vang", "loa-1", ("coastal", "flood"))
    assert [parse_topic(c, P) for c in t.commands] == [
        Address("province", ("hue",), "cmd"),
        Address("commune", ("hue", "phu-vang"), "cmd"),
        Address("station", ("hue", "phu-vang", "loa-1"), "cmd"),
        Address("group", ("hue", "coastal"), "cmd"),
        Address("group", ("hue", "flood"), "cmd"),
    ]
    assert (t.state, t.event) == ("loaxa/v1/hue/phu-vang/loa-1/state", "loaxa/v1/hue/phu-vang/loa-1/event")


def test_province_filters_are_the_topic_shapes_with_wildcard_levels() -> None:
    assert province_commands(P, "hn") == (
        "loaxa/v1/hn/cmd",
        "loaxa/v1/hn/+/cmd",
        "loaxa/v1/hn/+/+/cmd",
        "loaxa/v1/hn/group/+/cmd",
    )
    assert province_reports(P, "hn") == ("loaxa/v1/hn/+/+/state", "loaxa/v1/hn/+/+/event")
    assert province_reports(P, "hn", events=False) == ("loaxa/v1/hn/+/+/state",)
    assert province_reports(P, "hn", states=False, events=False) == ()
    assert command_topic(P, "commune", ("hn", ANY)) == "loaxa/v1/hn/+/cmd"


def test_station_of_names_the_station_of_a_report() -> None:
    assert station_of("loaxa/v1/hue/pv/loa-1/state", P) == ("hue/pv/loa-1", "state")
    assert station_of("loaxa/v1/hue/pv/loa-1/event", P) == ("hue/pv/loa-1", "event")
    assert station_of("loaxa/v1/hue/pv/loa-1/cmd", P) is None  # a command is not a report


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/hue/pv/loa-1/state",  # another prefix
        "loaxa/v1x/hue/pv/loa-1/state",  # a prefix that only starts the same
        "loaxa/v1",
        "loaxa/v1/",
        "loaxa/v1/cmd",  # no province
        "loaxa/v1/hue/pv/loa-1/status",  # unknown last level
        "loaxa/v1/hue/pv/loa-1/x/state",  # one level too many
        "loaxa/v1/hue/pv/state",  # a commune has no state
        "loaxa/v1/hue/state",
        "loaxa/v1/hue//loa-1/state",  # empty level
        "loaxa/v1/hue/+/+/state",  # a filter, not a topic
        "loaxa/v1/hue/#",
        "loaxa/v1/HUE/pv/loa-1/state",  # not a slug
        "loaxa/v1/hue/group/cmd",  # `group` is not a commune
        "loaxa/v1/hue/group/flood/state",  # a group has no state
        "loaxa/v1/hue/group/flood/x/cmd",
        "loaxa/v1/hue/pv/loa-1/state/",
    ],
)
def test_malformed_topics_are_refused(topic: str) -> None:
    assert parse_topic(topic, P) is None
    assert station_of(topic, P) is None
