"""Protocol v1 commands: what is accepted, and the reason for what is not."""

from __future__ import annotations

import json

import pytest

from loaxa.errors import CommandError
from loaxa.protocol import Bulletin, Cancel, Ping, parse_command
from loaxa.topics import Topics


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
