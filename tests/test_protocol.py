"""Protocol v1 commands: what is accepted, and the reason for what is not."""

from __future__ import annotations

import json

import pytest

from loaxa.errors import CommandError
from loaxa.protocol import Bulletin, Cancel, Ping, parse_command
from loaxa.topics import Topics, response_problem, target_of_topic


def cmd(**fields) -> bytes:
    return json.dumps({"type": "bulletin", "id": "b-1", "text": "Xin chào.", **fields}, ensure_ascii=False).encode()


def test_a_minimal_bulletin_takes_the_protocol_defaults():
    b = parse_command(cmd())
    assert isinstance(b, Bulletin)
    assert (b.rev, b.priority, b.repeat, b.gap_s, b.chime, b.content.kind) == (1, "normal", 1, 3.0, True, "text")


def test_cancel_and_ping_parse():
    assert isinstance(parse_command(b'{"type":"cancel","id":"b-1"}'), Cancel)
    assert isinstance(parse_command(b'{"type":"ping","id":"p-1"}'), Ping)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"id": "x"}', "missing field: type"),
        (b'{"type": "reboot", "id": "x"}', "unknown command type 'reboot'"),
        (cmd(text="x" * 20_001), "20001 characters is over the 20000-character limit"),
        (cmd(id="../../etc/passwd"), "id: must be 1-64 of"),
        (cmd(id="a" * 65), "id: must be 1-64 of"),
        (cmd(rev=0), "rev"),
        (cmd(rev="2"), "rev"),
        (cmd(rev=True), "rev"),
        (cmd(priority="urgent"), "priority"),
        (cmd(repeat=11), "repeat"),
        (cmd(gap_s=601), "gap_s"),
        (cmd(volume=1.5), "volume"),
        (cmd(rate=3), "rate"),
        (cmd(colour="red"), "unknown field: colour"),
        (cmd(expires="2026-12-01T05:00:00"), "has no UTC offset"),
        (cmd(expires="tomorrow"), "is not an ISO 8601 time"),
        (cmd(audio={"url": "http://x/a.mp3", "sha256": "0" * 64}), "exactly one of text, audio, stream"),
        (json.dumps({"type": "bulletin", "id": "b"}).encode(), "exactly one of text, audio, stream"),
        (cmd(text="   "), "text: is empty"),
        (cmd(schedule={"daily": ["25:00"]}), "schedule"),
        (b'{"type":"bulletin","id":"b","text":"x","rev":NaN}', "NaN is not allowed"),
        (b"[" * 100_000, "payload"),
    ],
)
def test_bad_commands_are_rejected_with_a_reason(payload, reason):
    with pytest.raises(CommandError) as err:
        parse_command(payload)
    assert reason in str(err.value)


def test_a_deeply_nested_payload_is_rejected_not_crashed():
    payload = b'{"type":"bulletin","id":"b","text":"x","schedule":' + b'{"a":' * 5000 + b"1" + b"}" * 5001
    with pytest.raises(CommandError):
        parse_command(payload)


def test_the_station_subscribes_to_every_topic_that_addresses_it():
    t = Topics("loaxa/v1", "hue", "phu-vang", "loa-1", ("coastal",))
    assert t.commands == (
        "loaxa/v1/hue/cmd",
        "loaxa/v1/hue/phu-vang/cmd",
        "loaxa/v1/hue/phu-vang/loa-1/cmd",
        "loaxa/v1/hue/group/coastal/cmd",
    )
    assert t.state == "loaxa/v1/hue/phu-vang/loa-1/state"
    assert t.event == "loaxa/v1/hue/phu-vang/loa-1/event"


# --- issue 17: duplicate keys, `to`, response topics ---------------------------------


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (b'{"type":"bulletin","id":"b","text":"Th\xc3\xb4ng b\xc3\xa1o","text":"S\xc6\xa1 t\xc3\xa1n"}', "'text'"),
        (b'{"type":"bulletin","id":"b","id":"c","text":"x"}', "'id'"),
        (b'{"type":"cancel","id":"b","type":"bulletin","text":"x"}', "'type'"),
        (
            b'{"type":"bulletin","id":"b","audio":{"url":"http://a/x","url":"http://b/y","sha256":"0"},"text":"x"}',
            "'url'",
        ),
        (b'{"type":"bulletin","id":"b","text":"x","schedule":{"at":"2030-01-01T00:00:00+07:00","at":"x"}}', "'at'"),
    ],
)
def test_a_key_given_twice_anywhere_is_rejected(payload: bytes, key: str) -> None:
    """Issue 17 "duplicate keys": readers differ on which value wins, so neither is taken."""
    with pytest.raises(CommandError) as err:
        parse_command(payload)
    assert str(err.value) == f"duplicate key {key} in the command (each key may appear once)"


def test_a_duplicate_key_holding_a_newline_is_named_escaped() -> None:
    with pytest.raises(CommandError) as err:
        parse_command(b'{"type":"ping","id":"p","x\\nCRITICAL forged":1,"x\\nCRITICAL forged":2}')
    assert "\n" not in str(err.value) and "'x\\nCRITICAL forged'" in str(err.value)


@pytest.mark.parametrize("to", ["hue", "hue/phu-vang", "hue/phu-vang/loa-1", "hue/group/coastal"])
def test_every_shape_of_to_parses_on_every_command(to: str) -> None:
    for kind in ("cancel", "ping"):
        assert parse_command(json.dumps({"type": kind, "id": "x", "to": to}).encode()).to == to
    assert parse_command(cmd(to=to)).to == to


@pytest.mark.parametrize("to", ["", "HUE", "hue/", "/hue", "hue//x", "hue/a/b/c", "hue/+/x", "hue/#", 7, ["hue"]])
def test_a_to_that_names_no_target_is_rejected(to: object) -> None:
    with pytest.raises(CommandError, match="to"):
        parse_command(cmd(to=to))


@pytest.mark.parametrize(
    ("topic", "target"),
    [
        ("loaxa/v1/hue/cmd", "hue"),
        ("loaxa/v1/hue/phu-vang/cmd", "hue/phu-vang"),
        ("loaxa/v1/hue/phu-vang/loa-1/cmd", "hue/phu-vang/loa-1"),
        ("loaxa/v1/hue/group/coastal/cmd", "hue/group/coastal"),
        ("loaxa/v1/hue/phu-vang/loa-1/state", None),
        ("other/hue/cmd", None),
    ],
)
def test_the_target_a_command_topic_names(topic: str, target: str | None) -> None:
    assert target_of_topic(topic, "loaxa/v1") == target


ROOT = "loaxa/v1/hue/phu-vang/loa-1/response"


@pytest.mark.parametrize("topic", [f"{ROOT}/op", f"{ROOT}/ha-noi-ops/7", f"{ROOT}/Đài tỉnh/1"])
def test_a_response_topic_in_the_stations_namespace_is_allowed(topic: str) -> None:
    assert response_problem(topic, ROOT) is None


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("loaxa/v1/hue/phu-vang/loa-1/state", "is not this station's to answer on"),
        ("loaxa/v1/hue/phu-vang/loa-2/response/op", "is not this station's to answer on"),
        (ROOT, "is not this station's to answer on"),
        (f"{ROOT}/", "is not this station's to answer on"),
        (f"{ROOT}//x", "is not this station's to answer on"),
        (f"{ROOT}/+", "wildcard or a control character"),
        (f"{ROOT}/#", "wildcard or a control character"),
        ("#", "wildcard or a control character"),
        (f"{ROOT}/a\nb", "wildcard or a control character"),
        (f"{ROOT}/" + "x" * 300, "over the 256-character limit"),
        ("", "response topic is empty"),
    ],
)
def test_a_response_topic_elsewhere_is_refused_with_a_reason(topic: str, reason: str) -> None:
    """Issue 17: a ping may not make the station publish on its own state topic, or on a filter."""
    problem = response_problem(topic, ROOT)
    assert problem is not None and reason in problem
    assert "\n" not in problem


def test_the_station_answers_under_its_own_response_level() -> None:
    assert Topics("loaxa/v1", "hue", "phu-vang", "loa-1").response == ROOT
