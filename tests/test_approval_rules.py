"""Commune approval (issue 13, item 1) against a controllable clock: the rules, then what the store does.

The real inbox, ledger, SQLite store, scheduler and broadcast queue; only the
wall clock is the test's (`test_schedule_catchup.Rig`), so a schedule of
several days or a day-long wait takes no time. The end-to-end flow over the
broker is in `test_approval_e2e.py`.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from typing import Any

import pytest

from loaxa.approval import LOCAL_ISSUER, TECHNICIAN, ApprovalPolicy
from loaxa.broadcast_queue import BroadcastQueue
from loaxa.cli.approve import air_time
from loaxa.config import ApprovalSettings, SecuritySettings, parse_config
from loaxa.errors import ConfigError, LoaxaError
from loaxa.inbox import Inbox
from loaxa.protocol import validate_command
from loaxa.province.watch import Tracker
from loaxa.security import RateLimiter, Verifier
from loaxa.states import Priority
from loaxa.store import Ledger, Store
from test_schedule_catchup import START, TZ, Rig
from test_store_migration import OLD_STORE

STATION = {"province": "hue", "commune": "phu-vang", "id": "loa-1"}
PROVINCE = "province"
COMMUNE_KEY = "commune-2026"


# -- the configuration -----------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "key"),
    [
        ({"required_for": ["normal", "emergency"]}, "approval.required_for"),
        ({"issuers": {"district": ["low", "emergency"]}}, "approval.issuers"),
    ],
)
def test_emergency_can_never_be_made_to_wait_and_the_error_names_its_key(approval, key):
    with pytest.raises(ConfigError) as err:
        parse_config({"station": STATION, "approval": approval})
    assert f"{key}: " in str(err.value)
    assert "emergency bulletins never wait for approval" in str(err.value)


def test_an_approver_must_be_a_key_the_station_knows():
    with pytest.raises(ConfigError) as err:
        parse_config({"station": STATION, "approval": {"approvers": ["nobody"]}})
    assert "approval.approvers: 'nobody' not among security.issuers" in str(err.value)


def test_nothing_waits_by_default():
    policy = ApprovalPolicy(parse_config({"station": STATION}).approval)
    assert not any(policy.needs(PROVINCE, p) for p in Priority)


def test_who_waits_high_only_if_listed_emergency_and_the_technician_never_and_per_issuer_exceptions():
    policy = ApprovalPolicy(
        ApprovalSettings(required_for=(Priority.NORMAL, Priority.LOW), issuers={COMMUNE_KEY: (), "district": ("high",)})
    )
    assert policy.needs(PROVINCE, Priority.NORMAL) and policy.needs(PROVINCE, Priority.LOW)
    assert policy.needs("", Priority.NORMAL)  # unsigned bulletins follow required_for
    assert not policy.needs(PROVINCE, Priority.HIGH)  # not listed
    assert not policy.needs(PROVINCE, Priority.EMERGENCY)
    assert not policy.needs(COMMUNE_KEY, Priority.NORMAL)  # the commune's own key: never
    assert policy.needs("district", Priority.HIGH) and not policy.needs("district", Priority.NORMAL)
    everything = ApprovalPolicy(ApprovalSettings(required_for=(Priority.HIGH, Priority.NORMAL, Priority.LOW)))
    assert not everything.needs(LOCAL_ISSUER, Priority.HIGH)  # the technician's say/play


def test_only_a_signed_approver_may_answer_over_mqtt():
    policy = ApprovalPolicy(ApprovalSettings(approvers=(COMMUNE_KEY,)))
    assert policy.refusal(COMMUNE_KEY) is None
    assert "not in approval.approvers" in (policy.refusal(PROVINCE) or "")
    assert "must be signed" in (policy.refusal("") or "")


# -- the store's side ---------------------------------------------------------------


class Commune(Rig):
    """A station's inbox, store, scheduler and queue, on the rig's clock."""

    def __init__(self, root: Any, grace_s: float = 60.0, **approval: Any) -> None:
        super().__init__(root, grace_s)
        settings = ApprovalSettings(**{"required_for": ("normal", "low"), "approvers": (COMMUNE_KEY,), **approval})
        self.queue = BroadcastQueue(self.ledger, TZ, None)
        self.inbox = Inbox(
            ledger=self.ledger,
            scheduler=self.scheduler,
            verifier=Verifier(SecuritySettings()),
            limiter=RateLimiter(60),
            max_queue=100,
            on_queued=lambda b: None,
            stop_play=lambda issuer, id, why: False,
            respond=lambda topic, payload, correlation: None,
            approval=ApprovalPolicy(settings),
        )

    def send(self, issuer: str, **command: Any) -> Any:
        fields = {"type": "bulletin", "text": "Họp dân lúc 19 giờ.", **command}
        return self.inbox.apply(issuer, validate_command(fields), now=self.clock())  # type: ignore[arg-type]

    def answer(self, by: str, kind: str, id: str, **extra: Any) -> Any:
        return self.inbox.answer(by, validate_command({"type": kind, "id": id, **extra}), self.clock(), None)  # type: ignore[arg-type]

    def receipts(self, id: str) -> list[tuple[str, str | None]]:
        rows = self.store.query("SELECT payload FROM events ORDER BY seq")
        return [(e["event"], e.get("detail")) for e in map(json.loads, (r["payload"] for r in rows)) if e["id"] == id]


@pytest.fixture
def commune(tmp_path):
    c = Commune(tmp_path)
    yield c
    c.store.close()


def test_an_asap_bulletin_waits_with_nothing_queued_until_approved(commune):
    commune.send(PROVINCE, id="b1")
    assert [e for e, _ in commune.receipts("b1")] == ["received", "awaiting_approval"]
    assert commune.queue.survey(commune.clock())[0] == []
    assert [b.id for b in commune.ledger.awaiting()] == ["b1"]
    answer = commune.answer(COMMUNE_KEY, "approve", "b1")
    assert answer.ok
    assert commune.receipts("b1")[-1] == ("approved", f"by {COMMUNE_KEY}")
    [play] = commune.queue.survey(commune.clock())[0]
    assert play.id == "b1"
    assert commune.ledger.awaiting() == []


def test_emergency_and_unlisted_high_air_at_once(commune):
    commune.send(PROVINCE, id="alarm", priority="emergency")
    commune.send(PROVINCE, id="urgent", priority="high")
    assert "awaiting_approval" not in [e for e, _ in commune.receipts("alarm") + commune.receipts("urgent")]
    assert {p.id for p in commune.queue.survey(commune.clock())[0]} == {"alarm", "urgent"}


def test_approval_of_a_schedule_covers_every_slot_and_before_it_each_due_slot_is_held(commune):
    commune.send(PROVINCE, id="daily", schedule={"daily": ["07:00"]}, expires=(START + timedelta(days=4)).isoformat())
    commune.run_until(START + timedelta(hours=1, minutes=1))  # 07:01 on day 1: the slot is due
    eligible, held = commune.queue.survey(commune.clock())
    assert eligible == [] and [(h.play.id, h.detail) for h in held] == [("daily", "awaiting approval")]
    assert commune.answer(COMMUNE_KEY, "approve", "daily").ok
    assert [p.id for p in commune.queue.survey(commune.clock())[0]] == ["daily"]
    commune.run_until(START + timedelta(days=3, hours=1, minutes=1), step_s=3600)
    slots = commune.plays("daily")
    assert len(slots) == 4 and all(state == "pending" for _, state in slots)  # no approval asked again
    assert len(commune.queue.survey(commune.clock())[0]) == 4


def test_decline_is_terminal_closes_every_waiting_slot_and_carries_the_reason(commune):
    commune.send(PROVINCE, id="ad", schedule={"daily": ["07:00"]})
    commune.run_until(START + timedelta(hours=1, minutes=1))
    answer = commune.answer(COMMUNE_KEY, "decline", "ad", reason="Trùng lịch họp xã")
    assert answer.ok
    assert commune.receipts("ad")[-1] == ("declined", f"Trùng lịch họp xã (declined by {COMMUNE_KEY})")
    assert commune.state("ad") == "declined"
    assert commune.queue.survey(commune.clock()) == ([], [])
    commune.run_until(START + timedelta(days=2), step_s=3600)
    assert [state for _, state in commune.plays("ad")] == ["declined"]  # no slot after it either
    again = commune.answer(COMMUNE_KEY, "approve", "ad")
    assert not again.ok and commune.receipts("ad")[-1][0] == "rejected"


def test_an_unanswered_asap_bulletin_expires_after_the_longest_wait(tmp_path):
    commune = Commune(tmp_path, max_wait_h=2)
    commune.send(PROVINCE, id="late")
    commune.run_until(START + timedelta(hours=1, minutes=59))
    assert commune.state("late") == "active"
    commune.run_until(START + timedelta(hours=2, minutes=1))
    assert commune.state("late") == "expired"
    assert commune.receipts("late")[-1] == ("expired", "not approved within 2 h (approval.max_wait_h)")
    assert not commune.answer(COMMUNE_KEY, "approve", "late").ok
    assert commune.plays("late") == []
    commune.store.close()


def test_an_unanswered_bulletin_expires_at_its_own_expiry_when_that_is_sooner(commune):
    commune.send(PROVINCE, id="soon", expires=(START + timedelta(minutes=30)).isoformat())
    commune.run_until(START + timedelta(minutes=31))
    assert commune.receipts("soon")[-1] == ("expired", "not approved before its expiry time")


def test_approving_at_a_time_queues_the_play_for_then(commune):
    commune.send(PROVINCE, id="evening")
    later = commune.clock() + timedelta(hours=3)
    answer = commune.inbox.answer(
        TECHNICIAN, validate_command({"type": "approve", "id": "evening"}), commune.clock(), later
    )  # type: ignore[arg-type]
    assert answer.ok and "to air at" in answer.detail
    assert commune.queue.survey(commune.clock())[0] == []
    assert [p.id for p in commune.queue.survey(later)[0]] == ["evening"]


def test_answers_that_cannot_apply_are_rejected_with_a_reason(commune):
    commune.send(PROVINCE, id="b2", schedule={"at": (START + timedelta(hours=1)).isoformat()})
    nothing = commune.answer(COMMUNE_KEY, "approve", "nope")
    assert not nothing.ok and commune.receipts("nope") == [
        ("rejected", "cannot approve: no bulletin 'nope' is awaiting approval")
    ]
    at = commune.inbox.answer(TECHNICIAN, validate_command({"type": "approve", "id": "b2"}), commune.clock(), START)  # type: ignore[arg-type]
    assert not at.ok and "it airs at its slots" in at.detail
    assert commune.answer(COMMUNE_KEY, "approve", "b2").ok
    twice = commune.answer(COMMUNE_KEY, "approve", "b2")
    assert not twice.ok and twice.detail == "bulletin 'b2' is already approved"


def test_a_store_made_before_approval_gains_its_columns_and_its_bulletins_need_no_answer(tmp_path):
    """The schema step for approval: an older store opens, keeps its bulletins, and none of them waits."""
    path = tmp_path / "station.db"
    shutil.copyfile(OLD_STORE, path)
    store = Store(path)
    try:
        names = [r["name"] for r in store.query("PRAGMA table_info(bulletins)")]
        assert {"approval", "approval_by", "approval_at", "approval_until"} <= set(names)
        ledger = Ledger(store, "hue/phu-vang/loa-1")
        assert ledger.awaiting() == []
        assert {b.approval for b in ledger.scheduled_bulletins()} == {None}
    finally:
        store.close()
    again = Store(path)  # opening it again changes nothing
    try:
        assert [r["name"] for r in again.query("PRAGMA table_info(bulletins)")].count("approval") == 1
    finally:
        again.close()


def test_a_new_rev_of_an_approved_bulletin_waits_for_a_new_answer(commune):
    commune.send(PROVINCE, id="rev", rev=1)
    assert commune.answer(COMMUNE_KEY, "approve", "rev").ok
    commune.send(PROVINCE, id="rev", rev=2, text="Đính chính: họp lúc 20 giờ.")
    assert [e for e, _ in commune.receipts("rev")][-3:] == ["superseded", "received", "awaiting_approval"]
    assert commune.queue.survey(commune.clock()) == ([], [])  # rev 1's play is gone, rev 2 has none yet
    assert [(b.id, b.rev) for b in commune.ledger.awaiting()] == [("rev", 2)]


def test_approve_at_reads_a_time_of_day_as_the_next_one_at_the_station_or_an_iso_time():
    now = START  # 06:00 at the station
    assert air_time("17:30", TZ, now) == START.replace(hour=17, minute=30)
    assert air_time("05:00", TZ, now) == START.replace(hour=5) + timedelta(days=1)  # already past today
    assert air_time("2026-03-02T09:00+07:00", TZ, now).isoformat() == "2026-03-02T09:00:00+07:00"
    assert air_time("2026-03-02T09:00", TZ, now) == START.replace(hour=9)  # no offset: station time
    for bad in ("25:00", "soon"):
        with pytest.raises(LoaxaError, match="--at"):
            air_time(bad, TZ, now)


def test_publish_follows_a_station_that_declines_to_its_end():
    """`loaxa publish` waiting for `finished` stops waiting for a station whose commune declined."""
    tracker = Tracker("b1", None, "finished", 0.0)
    tracker.expect("hue/phu-vang/loa-1", True)
    for kind in ("received", "awaiting_approval"):
        tracker.event("hue/phu-vang/loa-1", {"id": "b1", "event": kind}, 1.0)
    assert not tracker.complete()
    row = tracker.event("hue/phu-vang/loa-1", {"id": "b1", "event": "declined", "detail": "Trùng lịch"}, 2.0)
    assert row is not None and (row.outcome, row.detail) == ("ended", "Trùng lịch")
    assert tracker.complete() and tracker.exit_code() == 0
