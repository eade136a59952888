"""Fuzzing the inbox in-process: thousands of malformed and hostile commands
go through `parse_command` and the Inbox's handling against a real SQLite
store. Nothing raises but `CommandError`; every command the protocol refuses
gets exactly one `rejected` receipt with a reason, and the store is unchanged.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaxa.errors import CommandError
from loaxa.protocol import parse_command
from loaxa.schedule import Scheduler
from loaxa.store import Ledger, Store
from loaxa.testing.inbox import open_inbox

SHA = "ab" * 32

# -- strategies: shared with the live fuzz test ---------------------------------

HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "\u202e",
    "\ud800",
    "../../etc/passwd",
    "..\\..\\boot.ini",
    "%2e%2e%2f",
    "/dev/zero",
    "file:///etc/shadow",
    "http://user:pw@127.0.0.1/x.wav",
    "http://[::1",
    "javascript:alert(1)",
    "x" * 5000,
    "a\nb\rc\td",
    "\x1b[31m",
    "ｉｄ",
    "NaN",
    "1e999",
    "--",
    ";DROP TABLE plays;--",
    "$(reboot)",
    "`id`",
]
FIELDS = [
    "type",
    "id",
    "rev",
    "priority",
    "text",
    "audio",
    "stream",
    "schedule",
    "repeat",
    "gap_s",
    "expires",
    "chime",
    "volume",
    "voice",
    "rate",
    "issued",
    "to",
    "kid",
    "sig",
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**53 + 1, 2**63, 10**30, 1e308, -1e308, 5e-324, 0.5]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(HOSTILE_STRINGS),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _deep(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


@st.composite
def broken_bulletins(draw: st.DrawFn) -> dict[str, Any]:
    """A good bulletin with one to three fields replaced, added or removed."""
    base: dict[str, Any] = {"type": "bulletin", "id": "fz-1", "text": "Xin chào bà con."}
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["replace", "replace", "add", "drop"]))
        if how == "drop" and base:
            base.pop(draw(st.sampled_from(sorted(base))))
        else:
            key = draw(st.sampled_from(FIELDS)) if how == "replace" else draw(st.text(min_size=1, max_size=12))
            base[key] = draw(json_values)
    return base


@st.composite
def hostile_nested(draw: st.DrawFn) -> dict[str, Any]:
    """Nested objects with hostile content: audio/stream URLs, schedules."""
    url = draw(st.sampled_from(HOSTILE_STRINGS + ["ftp://x/a.wav", "http://127.0.0.1:99999/a", "https://%00/x"]))
    which = draw(st.sampled_from(["audio", "stream", "schedule"]))
    if which == "audio":
        nested: Any = {"url": url, "sha256": draw(st.sampled_from([SHA, SHA.upper() + "0", "../" * 20, 64]))}
    elif which == "stream":
        nested = {"url": url, "duration_s": draw(json_scalars)}
    else:
        nested = draw(
            st.sampled_from(
                [
                    {"at": url},
                    {"daily": [url]},
                    {"daily": ["25:61"]},
                    {"daily": ["05:30"] * 10_000},
                    {"daily": ["05:30"], "days": ["funday"]},
                    {"at": "2026-01-01T00:00:00"},
                    {"daily": "05:30"},
                    {"daily": ["05:30"], "from": "2026-13-01"},
                    {"at": "9999-12-31T23:59:59+14:00", "daily": ["05:30"]},
                ]
            )
        )
    body: dict[str, Any] = {"type": "bulletin", "id": "fz-nested", which: nested}
    if which == "schedule":
        body["text"] = "Xin chào."
    if draw(st.booleans()):
        body[draw(st.sampled_from(["text", "audio", "stream"]))] = draw(json_values)
    return body


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


hostile_payloads = st.one_of(
    broken_bulletins().map(_dump),
    hostile_nested().map(_dump),
    json_values.map(_dump),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.builds(_deep, st.sampled_from([100, 5_000, 30_000]), st.sampled_from(["list", "dict"])).map(str.encode),
    st.sampled_from(
        [
            b'{"type": "bulletin", "id": "x", "text": NaN}',
            b'{"type": "bulletin", "id": "x", "text": "a", "rev": Infinity}',
            b'{"type": "ping", "id": "x", "id": "y", "type": "cancel", "type": 3}',
            b'{"type": "bulletin", "rev": ' + b"9" * 5000 + b"}",
            b'\xef\xbb\xbf{"type": "ping", "id": "bom"}',
            b'{"type": "ping", "id": "x\\u0000"}',
            b"\x00" * 100,
            b'{"type": "bulletin", "id": "x", "text": "\\ud800"}',
            b"{" * 70_000,
        ]
    ),
)

# -- the in-process rig ------------------------------------------------------------


class Rig:
    """An Inbox on a real store, with a scheduler that is built but not started."""

    def __init__(self, folder: Path) -> None:
        self.store = Store(folder / "station.db")
        ledger = Ledger(self.store, "hue/phu-vang/loa-1")
        scheduler = Scheduler(ledger, ZoneInfo("Asia/Ho_Chi_Minh"), 600, lambda: True, lambda: None)
        self.inbox = open_inbox(ledger, scheduler)

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        return {
            t: [tuple(r) for r in self.store.query(f"SELECT * FROM {t} ORDER BY rowid")]
            for t in ("bulletins", "seen", "plays")
        }

    def events_after(self, seq: int) -> list[dict[str, Any]]:
        return [
            json.loads(r["payload"])
            for r in self.store.query("SELECT payload FROM events WHERE seq > ? ORDER BY seq", (seq,))
        ]

    def last_seq(self) -> int:
        return int(self.store.query("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = Rig(tmp_path_factory.mktemp("fuzz"))
    yield r
    assert r.store.integrity_ok()
    r.store.close()


def check_one(rig: Rig, payload: bytes) -> str:
    """Feed one payload through parse and the inbox; the outcome for tallies."""
    try:
        parse_command(payload)
        refused = None
    except CommandError as exc:  # anything else fails the test
        refused = str(exc) or "refused"
    before, seq = rig.rows(), rig.last_seq()
    meta = {"topic": "loaxa/v1/hue/phu-vang/loa-1/cmd", "target": "hue/phu-vang/loa-1"}  # as the link gives it
    rig.inbox.handle(payload, False, meta)
    events = rig.events_after(seq)
    if refused is None:
        # A higher rev of a bulletin already held is answered `superseded` (for the old rev), then `received`.
        first = ("received", "superseded", "duplicate", "pong", "cancelled", "rejected")
        assert len(events) >= 1 and events[0]["event"] in first, events
        return "accepted"
    assert [e["event"] for e in events] == ["rejected"], events
    assert isinstance(events[0]["detail"], str) and events[0]["detail"].strip()
    assert rig.rows() == before
    return "rejected"


FUZZ = settings(max_examples=1500, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(payload=hostile_payloads)
def test_hostile_payloads_are_rejected_with_a_reason_and_change_nothing(rig, payload):
    check_one(rig, payload)


@settings(FUZZ, max_examples=600)
@given(body=broken_bulletins())
def test_broken_bulletins_never_raise_and_nothing_is_half_applied(rig, body):
    check_one(rig, _dump(body))


@settings(FUZZ, max_examples=300)
@given(id=st.text(alphabet=string.printable + "éạ\u202e\x00/\\", min_size=0, max_size=80))
def test_ids_outside_the_safe_alphabet_are_refused(rig, id):
    payload = _dump({"type": "bulletin", "id": id, "text": "Xin chào."})
    safe = 1 <= len(id) <= 64 and all(c in string.ascii_letters + string.digits + "._:-" for c in id)
    assert check_one(rig, payload) == ("accepted" if safe else "rejected")


def test_the_fuzz_mostly_hit_the_refusal_paths(rig):
    """Guards the strategies themselves: a fuzz that only sends good commands tests nothing."""
    outcomes: list[str] = []

    @settings(FUZZ, max_examples=300)
    @given(payload=hostile_payloads)
    def draw(payload):
        outcomes.append(check_one(rig, payload))

    draw()
    print(f"hostile payloads: {outcomes.count('rejected')} rejected of {len(outcomes)}")
    assert outcomes.count("rejected") > 0.9 * len(outcomes)
