"""Commune approval end to end (issue 13, item 1): a real `loaxa run`, Mosquitto, the wav sink, the CLI.

The province sends unsigned bulletins (signatures are not required here);
the commune's approver answers with commands signed by its key, or the
technician with `loaxa approve` / `loaxa decline` at the station. Nothing
of a bulletin awaiting approval may reach the output: each test proves it
by airing an emergency (which never waits) and finding only that one in
the output.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from loaxa.player.chime import chime
from loaxa.security import public_key_b64, sign
from loaxa.testing.audio import wait_for_files
from loaxa.testing.station import STATION, Operator, StationProcess, station_config
from test_broadcast_onair import LONG, RATE, paced_station, sessions, wait_on_air
from test_technician import loaxa

COMMUNE, PROVINCE = "commune-2026", "province-2026"
CLOSING_S = len(chime(RATE, opening=False)) / RATE
KEYS = {COMMUNE: Ed25519PrivateKey.generate(), PROVINCE: Ed25519PrivateKey.generate()}
STRANGER = Ed25519PrivateKey.generate()
TEXT = "Ủy ban nhân dân xã thông báo lịch họp dân."
ALARM = "Khẩn cấp. Nước sông đang lên nhanh."


def approval_station(root: Path, port: int, **approval: Any) -> StationProcess:
    config = station_config(
        root,
        port,
        f"wav:{root / 'aired'}",
        security__issuers=[{"kid": kid, "public_key": public_key_b64(key)} for kid, key in KEYS.items()],
        approval={"required_for": ["high", "normal", "low"], "approvers": [COMMUNE], **approval},
    )
    return StationProcess(root, config)


@pytest.fixture
def station(tmp_path, broker, operator):
    s = approval_station(tmp_path / "station", broker.port).start()
    operator.wait_state(lambda st: st["online"], 30)
    yield s
    assert s.stop() == 0, s.log()


def signed(kind: str, id: str, key: Ed25519PrivateKey = KEYS[COMMUNE], kid: str = COMMUNE, **extra: Any) -> dict:
    """A command signed for this station (protocol 1.1: a signed command names its target in `to`)."""
    return sign({"type": kind, "id": id, "to": "/".join(STATION), **extra}, key, kid, issued=datetime.now(UTC))


def aired(station: StationProcess) -> list[str]:
    """The ids of the sessions in the wav sink's folder (each file is named after its bulletin)."""
    folder = station.root / "aired"
    return sorted(p.name for p in folder.glob("*.wav")) if folder.exists() else []


def only_the_alarm_aired(station: StationProcess, operator: Operator, alarm: str) -> None:
    """An emergency airs (it never waits); once it has, it is the only thing in the output."""
    operator.send({"type": "bulletin", "id": alarm, "priority": "emergency", "text": ALARM})
    operator.wait_for(alarm, "finished", 60)
    [wav] = wait_for_files(station.root / "aired", 1)
    assert alarm in wav.name, aired(station)


def receipts(operator: Operator, id: str, event: str, count: int, timeout_s: float = 20.0) -> list[dict]:
    """The first `count` `event` receipts of `id`, waiting for each new event (no polling)."""
    deadline = time.monotonic() + timeout_s
    while True:
        since = len(operator.events)
        found = [e for e in operator.events[:since] if e["id"] == id and e["event"] == event]
        if len(found) >= count:
            return found[:count]
        operator.next_event(since, max(0.1, deadline - time.monotonic()))


def cli(station: StationProcess, *args: str) -> Any:
    result = loaxa(*args, "--config", str(station.config_path))
    assert result.returncode == 0, result.stderr + station.log()
    return result


def test_awaits_approval_airs_after_a_signed_approve_and_answers_from_others_are_rejected(station, operator):
    operator.send({"type": "bulletin", "id": "hop-dan", "text": TEXT})
    waiting = operator.wait_for("hop-dan", "awaiting_approval", 20)
    assert "expires unanswered at" in waiting["detail"]
    only_the_alarm_aired(station, operator, "alarm-1")
    [row] = json.loads(cli(station, "pending", "--json").stdout)
    assert (row["id"], row["issuer"], row["priority"]) == ("hop-dan", "(unsigned)", "normal")
    assert row["preview"] == TEXT and row["deadline"] is not None
    table = cli(station, "pending").stdout
    assert "hop-dan" in table and "Ủy ban nhân dân" in table

    # Approval by anyone but an approver is refused, with the reason, and the bulletin still waits.
    operator.send({"type": "approve", "id": "hop-dan"})
    operator.send(signed("approve", "hop-dan", KEYS[PROVINCE], PROVINCE))
    operator.send(signed("approve", "hop-dan", STRANGER, "stranger"))
    refusals = receipts(operator, "hop-dan", "rejected", 3)
    details = sorted(e["detail"] for e in refusals)
    assert details == sorted(
        [
            "cannot approve: an approval must be signed with a key listed in approval.approvers",
            f"cannot approve: key {PROVINCE!r} may not approve or decline bulletins here (not in approval.approvers)",
            "unknown key id 'stranger': not among this station's security.issuers",
        ]
    )
    assert [r["id"] for r in json.loads(cli(station, "pending", "--json").stdout)] == ["hop-dan"]

    operator.send(signed("approve", "hop-dan"))
    approved = operator.wait_for("hop-dan", "approved", 20)
    assert approved["detail"] == f"by {COMMUNE}"
    operator.wait_for("hop-dan", "finished", 60)
    assert operator.of("hop-dan") == [
        "received",
        "awaiting_approval",
        "rejected",
        "rejected",
        "rejected",
        "approved",
        "started",
        "finished",
    ]
    assert len(wait_for_files(station.root / "aired", 2)) == 2
    assert cli(station, "pending").stdout.strip() == "nothing awaits approval"


def test_declined_at_the_station_never_airs_and_the_province_reads_the_reason(station, operator):
    operator.send({"type": "bulletin", "id": "quang-cao", "text": TEXT, "priority": "low"})
    operator.wait_for("quang-cao", "awaiting_approval", 20)
    out = cli(station, "decline", "quang-cao", "--reason", "Nội dung quảng cáo, không phát").stdout
    assert "Nội dung quảng cáo, không phát" in out
    declined = operator.wait_for("quang-cao", "declined", 20)
    assert declined["detail"] == "Nội dung quảng cáo, không phát (declined by the technician at the station)"
    operator.send(signed("approve", "quang-cao"))  # too late: declined is final
    rejected = operator.wait_for("quang-cao", "rejected", 20)
    assert rejected["detail"] == "cannot approve: no bulletin 'quang-cao' is awaiting approval"
    only_the_alarm_aired(station, operator, "alarm-2")
    assert operator.of("quang-cao") == ["received", "awaiting_approval", "declined", "rejected"]


def test_the_technicians_say_never_waits_for_approval(station, operator):
    result = loaxa("say", "--config", str(station.config_path), "Thử loa.")
    assert result.returncode == 0, result.stderr + station.log()
    assert not [e for e in operator.events if e["event"] == "awaiting_approval"]


def test_unanswered_bulletins_expire_at_their_expiry_or_after_the_longest_wait(tmp_path, broker, operator):
    station = approval_station(tmp_path / "station", broker.port, max_wait_h=0.002).start()  # 7.2 s
    try:
        operator.wait_state(lambda st: st["online"], 30)
        expires = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        operator.send({"type": "bulletin", "id": "short", "text": TEXT, "expires": expires})
        operator.send({"type": "bulletin", "id": "forever", "text": TEXT})
        assert operator.wait_for("short", "expired", 20)["detail"] == "not approved before its expiry time"
        assert (
            operator.wait_for("forever", "expired", 30)["detail"] == "not approved within 0.002 h (approval.max_wait_h)"
        )
        operator.send(signed("approve", "forever"))
        operator.wait_for("forever", "rejected", 20)
        only_the_alarm_aired(station, operator, "alarm-3")
        assert operator.of("short") == ["received", "awaiting_approval", "expired"]
    finally:
        assert station.stop() == 0, station.log()


def test_a_bulletin_awaiting_approval_survives_kill_9_and_is_answered_after_the_restart(tmp_path, broker, operator):
    station = approval_station(tmp_path / "station", broker.port).start()
    try:
        operator.wait_state(lambda st: st["online"], 30)
        operator.send({"type": "bulletin", "id": "keep", "text": TEXT})
        operator.send({"type": "bulletin", "id": "drop", "text": TEXT})
        operator.wait_for("keep", "awaiting_approval", 20)
        operator.wait_for("drop", "awaiting_approval", 20)
        station.kill()
        killed = time.time()
        station.start()
        operator.wait_state(lambda st: st["online"] and datetime.fromisoformat(st["at"]).timestamp() > killed, 30)
        assert sorted(r["id"] for r in json.loads(cli(station, "pending", "--json").stdout)) == ["drop", "keep"]
        out = cli(station, "approve", "keep").stdout
        assert out.strip() == "keep: approved by the technician at the station"
        assert operator.wait_for("keep", "approved", 20)["detail"] == "by the technician at the station"
        operator.wait_for("keep", "finished", 60)
        operator.send(signed("decline", "drop", reason="Đã phát ở loa khác"))
        assert operator.wait_for("drop", "declined", 20)["detail"] == f"Đã phát ở loa khác (declined by {COMMUNE})"
        [wav] = wait_for_files(station.root / "aired", 1)
        assert "keep" in wav.name
    finally:
        assert station.stop() == 0, station.log()


def test_a_due_slot_awaiting_approval_is_held_once_then_missed_and_an_approved_one_airs_at_its_slot(
    tmp_path, broker, operator
):
    root = tmp_path / "station"
    config = approval_station(root, broker.port).config
    config["broadcast"]["grace_s"] = 3
    station = StationProcess(root, config).start()
    try:
        operator.wait_state(lambda st: st["online"], 30)
        slot = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
        operator.send({"type": "bulletin", "id": "waits", "text": TEXT, "schedule": {"at": slot.isoformat()}})
        operator.send({"type": "bulletin", "id": "yes", "text": TEXT, "schedule": {"at": slot.isoformat()}})
        operator.wait_for("yes", "awaiting_approval", 20)
        operator.send(signed("approve", "yes"))
        operator.wait_for("yes", "approved", 20)
        started = operator.wait_for("yes", "started", 30)
        assert datetime.fromisoformat(started["at"]) >= slot  # approved: airs at its slot, not before
        held = operator.wait_for("waits", "held", 30)
        assert held["detail"] == "awaiting approval" and datetime.fromisoformat(held["occurrence"]) == slot
        missed = operator.wait_for("waits", "missed", 30)
        assert "awaiting approval" in missed["detail"] and "beyond the 3 s grace" in missed["detail"]
        assert operator.of("waits") == ["received", "scheduled", "awaiting_approval", "held", "missed"]
        operator.wait_for("yes", "finished", 60)
        [wav] = wait_for_files(root / "aired", 1)
        assert "yes" in wav.name
    finally:
        assert station.stop() == 0, station.log()


def test_a_decline_after_approval_stops_the_bulletin_on_air_at_the_next_block(tmp_path, broker, operator):
    """The commune may change its mind until the bulletin has aired: on air, it stops within a block or two
    and ends with the closing chime, as a cancelled one does."""
    station = paced_station(
        tmp_path,
        broker,
        operator,
        security__issuers=[{"kid": kid, "public_key": public_key_b64(key)} for kid, key in KEYS.items()],
        approval__required_for=["normal"],
        approval__approvers=[COMMUNE],
    )
    try:
        operator.send({"type": "bulletin", "id": "long", "text": LONG, "rate": 2.0})
        operator.wait_for("long", "awaiting_approval", 20)
        operator.send(signed("approve", "long"))
        wait_on_air(station, "long", sentence=1)
        operator.send(signed("decline", "long", reason="Sai nội dung"))
        declined = operator.wait_for("long", "declined", 20)
        [cut] = sessions(station.aired, 1)
        # What the paced device holds (~1.3 s), a block or two, then the closing chime (an ending listeners
        # hear): not the sentences to come.
        assert cut.end < datetime.fromisoformat(declined["at"]).timestamp() + 2.0 + CLOSING_S
        assert operator.of("long") == ["received", "awaiting_approval", "approved", "started", "declined"]
        deadline = time.monotonic() + 10  # the player closes the play once its output is closed: no receipt for that
        while station.control({"cmd": "queue"})["plays"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert station.control({"cmd": "queue"})["plays"] == []
        assert "finished" not in operator.of("long")
    finally:
        assert station.stop() == 0, station.log()


def test_approve_at_a_time_queues_the_bulletin_for_then_as_loaxa_queue_shows(station, operator):
    operator.send({"type": "bulletin", "id": "toi-nay", "text": TEXT})
    operator.wait_for("toi-nay", "awaiting_approval", 20)
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    out = cli(station, "approve", "toi-nay", "--at", at.isoformat()).stdout
    assert "approved by the technician at the station, to air at" in out
    approved = operator.wait_for("toi-nay", "approved", 20)
    assert datetime.fromisoformat(approved["detail"].rsplit("to air at ", 1)[1]) == at
    table = cli(station, "queue").stdout
    assert "toi-nay" in table and "sentence 1" in table  # queued for then, from the top
    assert "started" not in operator.of("toi-nay")
    cli(station, "cancel", "toi-nay")  # and the technician can still take it back
    operator.wait_for("toi-nay", "cancelled", 20)
