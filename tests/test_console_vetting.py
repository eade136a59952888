"""Vetting ("thẩm định", issue 15): an editor's draft goes out only after an approver approves it, once.

The state machine (`loaxa.province.console.drafts`) against the province
database itself, SQLite and a real PostgreSQL: every step is one conditional
UPDATE, so approvers racing on one draft send it once. Then the pages over
real HTTP on a real server, with light stations that receive what is sent.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from loaxa.province.console import drafts
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database
from loaxa.province.server.settings import load_settings, parse_settings
from loaxa.testing.console import Client, ConsoleBench
from loaxa.testing.province import have_postgres, start_postgres

STATIONS = [("sim", "c000", "s00"), ("sim", "c000", "s01"), ("sim", "c001", "s00")]
FIELDS = {"title": "Họp dân", "priority": "normal"}


def command(bid: str = "d-1", priority: str = "normal") -> dict[str, Any]:
    return {"type": "bulletin", "id": bid, "text": "Họp dân lúc 19 giờ.", "priority": priority}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database.open(parse_settings({"province": {"id": "sim"}, "data_dir": str(tmp_path)}))
    d.migrate()
    yield d
    d.close()


@pytest.fixture(scope="module")
def pg_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    if not have_postgres():
        pytest.fail("PostgreSQL is part of the test bench (Debian package postgresql)")
    root = tmp_path_factory.mktemp("pg")
    pg = start_postgres(root)
    d = Database.open(parse_settings({"province": {"id": "sim"}, "data_dir": str(root), "database": {"url": pg.url}}))
    d.migrate()
    yield d
    d.close()
    pg.stop()


def written(db: Database, editor: str = "editor", priority: str = "normal", bid: str = "d-1") -> int:
    return drafts.create(db, editor, "Họp dân", FIELDS | {"priority": priority}, ["sim"], command(bid, priority))


# -- the state machine -------------------------------------------------------------------------


def test_a_draft_goes_from_its_editor_to_an_approver_and_is_sent_once(db: Database) -> None:
    n = written(db)
    assert drafts.load(db, n).status == "draft"
    submitted = drafts.submit(db, n, "editor")
    assert submitted.status == "submitted" and submitted.submitted_at is not None
    with pytest.raises(drafts.Stale, match="with the approvers"):
        drafts.save(db, n, "editor", "x", FIELDS, ["sim"], command())  # frozen while it is judged
    sent = drafts.approve(db, n, "approver", version=submitted.version)
    assert (sent.status, sent.editor, sent.approver, sent.bulletin_id) == ("sent", "editor", "approver", "d-1")
    assert sent.approved_at is not None and sent.approved_at >= sent.submitted_at
    assert drafts.sender_of(sent) == "console:approver (editor editor)"
    with pytest.raises(drafts.Stale, match="sent already, by approver, as bulletin d-1"):
        drafts.approve(db, n, "approver2")
    with pytest.raises(drafts.Stale):
        drafts.give_back(db, n, "approver2", "too late")


def test_a_returned_draft_shows_the_comment_is_changed_and_resubmitted(db: Database) -> None:
    n = written(db)
    drafts.submit(db, n, "editor")
    with pytest.raises(drafts.DraftError, match="should change"):
        drafts.give_back(db, n, "approver", "   ")
    back = drafts.give_back(db, n, "approver", "Ghi rõ địa điểm họp.")
    assert (back.status, back.comment, back.approver) == ("returned", "Ghi rõ địa điểm họp.", "approver")
    with pytest.raises(drafts.Stale):
        drafts.approve(db, n, "approver")  # returned: nothing to approve until resubmitted
    with pytest.raises(drafts.Stale):
        drafts.save(db, n, "someone-else", "x", FIELDS, ["sim"], command())  # only its editor changes it
    changed = drafts.save(db, n, "editor", "Họp dân tại nhà văn hóa", FIELDS, ["sim"], command("d-2"))
    assert changed.status == "returned" and changed.comment == "Ghi rõ địa điểm họp."  # shown until resubmitted
    again = drafts.submit(db, n, "editor")
    assert drafts.approve(db, n, "approver", version=again.version).bulletin_id == "d-2"


def test_an_approval_names_the_submission_it_saw(db: Database) -> None:
    """Returned, changed and resubmitted while an approver looked at the old text: that approval is refused."""
    n = written(db)
    seen = drafts.submit(db, n, "editor").version
    drafts.give_back(db, n, "approver2", "Sửa giờ.")
    drafts.save(db, n, "editor", "Họp dân", FIELDS, ["sim"], command("d-2"))
    time.sleep(0.01)
    drafts.submit(db, n, "editor")
    with pytest.raises(drafts.Stale, match="submitted again since you opened it"):
        drafts.approve(db, n, "approver", version=seen)
    assert drafts.load(db, n).status == "submitted"


def test_an_approver_never_approves_their_own_draft_except_an_emergency(db: Database) -> None:
    mine = written(db, editor="approver")
    drafts.submit(db, mine, "approver")
    with pytest.raises(drafts.NotAllowed, match="another approver must vet it"):
        drafts.approve(db, mine, "approver")
    assert drafts.load(db, mine).status == "submitted"
    with pytest.raises(drafts.NotAllowed, match="Only an emergency"):
        drafts.send_now(db, written(db, editor="approver", bid="d-3"), "approver")
    urgent = written(db, editor="approver", priority="emergency", bid="d-4")
    sent = drafts.send_now(db, urgent, "approver")
    assert (sent.status, sent.editor, sent.approver) == ("sent", "approver", "approver")
    assert drafts.sender_of(sent) == "console:approver (editor approver, emergency without a second approver)"


def test_a_draft_without_a_bulletin_cannot_be_submitted_and_a_sent_one_cannot_be_withdrawn(db: Database) -> None:
    n = drafts.create(db, "editor", "?", {"title": ""}, [])
    with pytest.raises(drafts.Stale, match="does not make a bulletin yet"):
        drafts.submit(db, n, "editor")
    assert drafts.withdraw(db, n, "editor").status == "withdrawn"
    sent = written(db)
    drafts.submit(db, sent, "editor")
    drafts.approve(db, sent, "approver")
    with pytest.raises(drafts.Stale, match="sent already"):
        drafts.withdraw(db, sent, "editor")
    with pytest.raises(drafts.NoDraft):
        drafts.load(db, 999)


def test_a_send_that_failed_puts_the_draft_back_in_the_queue(db: Database) -> None:
    n = written(db)
    drafts.submit(db, n, "editor")
    drafts.approve(db, n, "approver")
    back = drafts.unsend(db, n, "approver")
    assert (back.status, back.approver, back.bulletin_id, back.approved_at) == ("submitted", None, None, None)


def test_the_listing_sorts_emergencies_first_for_approvers(db: Database) -> None:
    normal = written(db, bid="d-1")
    urgent = written(db, priority="emergency", bid="d-2")
    for n in (normal, urgent):
        drafts.submit(db, n, "editor")
    back = written(db, bid="d-3")
    drafts.submit(db, back, "editor")
    drafts.give_back(db, back, "approver", "Sửa.")
    seen = drafts.listing(db, "approver", approver=True)
    assert [d.id for d in seen.waiting] == [urgent, normal]
    assert [d.id for d in seen.returned] == [back] and seen.mine == []
    editor = drafts.listing(db, "editor", approver=False)
    assert editor.waiting == [] and {d.id for d in editor.mine} == {normal, urgent}
    assert [d.id for d in editor.returned] == [back]


def race(db: Database, approvers: int, rounds: int) -> list[int]:
    """`approvers` threads approve the same submitted draft at the same instant, `rounds` times; winners per round."""
    winners = []
    with ThreadPoolExecutor(approvers) as pool:
        for r in range(rounds):
            n = written(db, bid=f"race-{r}")
            drafts.submit(db, n, "editor")
            start = threading.Barrier(approvers)

            def one(i: int, n: int = n, start: threading.Barrier = start) -> bool:
                start.wait()
                try:
                    drafts.approve(db, n, f"approver{i}")
                except drafts.Stale:
                    return False
                return True

            got = list(pool.map(one, range(approvers)))
            winners.append(sum(got))
            final = drafts.load(db, n)
            assert final.status == "sent" and final.approver == f"approver{got.index(True)}"
    return winners


def test_approvers_racing_on_sqlite_send_each_draft_once(db: Database) -> None:
    assert race(db, approvers=4, rounds=15) == [1] * 15


def test_approvers_racing_on_postgresql_send_each_draft_once(pg_db: Database) -> None:
    """PostgreSQL runs the UPDATEs truly at once: the second waits on the row lock, then finds it sent."""
    assert race(pg_db, approvers=6, rounds=25) == [1] * 25


# -- the pages, over HTTP, on a real server ------------------------------------------------------


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleBench]:
    with ConsoleBench(tmp_path_factory.mktemp("console-vetting"), light=STATIONS) as bench:
        yield bench


def session(bench: ConsoleBench, name: str) -> tuple[Client, str]:
    client = Client(bench.url)
    assert client.login(name) == 303
    status, _, body = client.get("/drafts")
    token = re.search(r'name="csrf" value="([^"]+)"', body)
    assert token, body[:2000]
    return client, token.group(1)


def compose(client: Client, csrf: str, action: str = "submit", **fields: str) -> tuple[int, dict[str, str], str]:
    form = {
        "csrf": csrf,
        "title": "Họp dân",
        "kind": "text",
        "text": "Tối nay 19 giờ họp dân tại nhà văn hóa thôn.",
        "priority": "normal",
        "target": "sim",
        "when": "now",
        "repeat": "1",
        "gap": "3",
        "action": action,
        **fields,
    }
    return client.post("/compose", form)


def draft_number(location: str) -> int:
    found = re.match(r"/drafts/(\d+)", location)
    assert found, location
    return int(found.group(1))


def server_db(bench: ConsoleBench) -> Database:
    return Database.open(load_settings(bench.server.config_path))


def audit_rows(bench: ConsoleBench, path: str) -> list[tuple[str | None, int, str | None]]:
    db = server_db(bench)
    try:
        with db.engine.connect() as conn:
            a = t.audit.c
            rows = conn.execute(select(a.user, a.status, a.detail).where(a.path == path).order_by(a.id)).all()
        return [(r.user, r.status, r.detail) for r in rows]
    finally:
        db.close()


def test_an_approved_draft_is_sent_to_the_stations_with_both_names(bench: ConsoleBench) -> None:
    editor, e_csrf = session(bench, "editor")
    status, headers, _ = compose(editor, e_csrf)
    assert status == 303 and headers["location"].endswith("?done=submitted")
    n = draft_number(headers["location"])
    approver, a_csrf = session(bench, "approver")
    status, _, page = approver.get(f"/drafts/{n}")
    assert status == 200 and 'id="approve"' in page
    assert re.search(r'id="target-count" data-count="3"', page), "the approver sees the 3 stations it reaches"
    version = re.search(r'name="version" value="([^"]+)"', page)
    assert version
    status, headers, _ = approver.post(f"/drafts/{n}/approve", {"csrf": a_csrf, "version": version.group(1)})
    assert status == 303 and headers["location"].startswith("/bulletins/d")
    bid = headers["location"].removeprefix("/bulletins/")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and set(bench.light_fleet.last_commands().values()) != {bid}:
        time.sleep(0.1)
    assert bench.light_fleet.last_commands() == {"/".join(p): bid for p in STATIONS}
    db = server_db(bench)
    try:
        with db.engine.connect() as conn:
            row = conn.execute(select(t.bulletins).where(t.bulletins.c.bulletin_id == bid)).one()
            kept = conn.execute(select(t.drafts).where(t.drafts.c.id == n)).one()
    finally:
        db.close()
    assert row.sender == "console:approver (editor editor)" and row.issuer == "sim-province-console"
    assert all(c["sig"] and c["to"] == "sim" for c in json.loads(row.command))
    assert (kept.status, kept.editor, kept.approver, kept.bulletin_id) == ("sent", "editor", "approver", bid)
    assert kept.approved_at is not None
    # A second click, or a second approver: 409, nothing sent again.
    status, _, page = approver.post(f"/drafts/{n}/approve", {"csrf": a_csrf, "version": version.group(1)})
    assert status == 409 and f"/bulletins/{bid}" in page
    audit = audit_rows(bench, f"/drafts/{n}/approve")
    assert [(u, s) for u, s, _ in audit] == [("approver", 303), ("approver", 409)]
    assert "approved by approver" in (audit[0][2] or "") and "3 stations expected" in (audit[0][2] or "")
    # The drafts page lists it as sent, with the watch page's link.
    _, _, listing = editor.get("/drafts")
    assert f'href="/bulletins/{bid}"' in listing


def test_editors_and_viewers_cannot_approve_even_by_a_forged_post(bench: ConsoleBench) -> None:
    editor, e_csrf = session(bench, "editor")
    n = draft_number(compose(editor, e_csrf)[1]["location"])
    _, _, page = editor.get(f"/drafts/{n}")
    assert 'id="approve"' not in page and "/approve" not in page  # no button for an editor
    assert editor.post(f"/drafts/{n}/approve", {"csrf": e_csrf})[0] == 403
    viewer, v_csrf = Client(bench.url), None
    assert viewer.login("viewer") == 303
    assert viewer.get("/compose")[0] == 403 and viewer.get(f"/drafts/{n}")[0] == 403
    _, _, home = viewer.get("/bulletins")
    assert 'href="/compose"' not in home
    v_csrf = viewer.csrf("/admin")  # the refusal page carries the session's token too
    assert viewer.post(f"/drafts/{n}/approve", {"csrf": v_csrf})[0] == 403
    approver, _ = session(bench, "approver")
    assert approver.post(f"/drafts/{n}/approve", {})[0] == 403  # no CSRF token: refused, not sent
    assert approver.post(f"/drafts/{n}/approve", {"csrf": "forged"})[0] == 403
    assert drafts_status(bench, n) == "submitted"
    refused = audit_rows(bench, f"/drafts/{n}/approve")
    assert [(u, s) for u, s, _ in refused] == [("editor", 403), ("viewer", 403), ("approver", 403), ("approver", 403)]


def drafts_status(bench: ConsoleBench, n: int) -> str:
    db = server_db(bench)
    try:
        return drafts.load(db, n).status
    finally:
        db.close()


def test_returned_with_a_comment_the_editor_changes_and_resubmits(bench: ConsoleBench) -> None:
    editor, e_csrf = session(bench, "editor")
    n = draft_number(compose(editor, e_csrf)[1]["location"])
    approver, a_csrf = session(bench, "approver")
    assert approver.post(f"/drafts/{n}/return", {"csrf": a_csrf, "comment": ""})[0] == 400
    status, headers, _ = approver.post(f"/drafts/{n}/return", {"csrf": a_csrf, "comment": "Ghi rõ địa điểm họp."})
    assert status == 303
    _, _, page = editor.get(f"/drafts/{n}")
    assert "Ghi rõ địa điểm họp." in page and f'action="/drafts/{n}/save"' in page  # the edit form, with it
    _, _, listing = editor.get("/drafts")
    assert re.search(rf'id="draft-{n}"[^>]*data-status="returned"', listing)
    status, headers, _ = editor.post(
        f"/drafts/{n}/submit",
        {
            "csrf": e_csrf,
            "title": "Họp dân",
            "kind": "text",
            "text": "Tối nay 19 giờ họp dân tại nhà văn hóa thôn Đông.",
            "priority": "normal",
            "target": "sim/c000",
            "when": "now",
        },
    )
    assert status == 303 and drafts_status(bench, n) == "submitted"
    status, headers, _ = approver.post(f"/drafts/{n}/approve", {"csrf": a_csrf})
    assert status == 303
    db = server_db(bench)
    try:
        sent = drafts.load(db, n)
    finally:
        db.close()
    assert sent.targets == ["sim/c000"] and "thôn Đông" in (sent.command or {}).get("text", "")


def test_two_approvers_at_once_send_a_draft_once(bench: ConsoleBench) -> None:
    editor, e_csrf = session(bench, "editor")
    n = draft_number(compose(editor, e_csrf)[1]["location"])
    a1, c1 = session(bench, "approver")
    a2, c2 = session(bench, "admin")  # an admin has the approver's rights
    start = threading.Barrier(2)

    def click(client: Client, csrf: str) -> int:
        start.wait()
        return client.post(f"/drafts/{n}/approve", {"csrf": csrf})[0]

    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(lambda pair: click(*pair), [(a1, c1), (a2, c2)]))
    assert codes == [303, 409]
    db = server_db(bench)
    try:
        with db.engine.connect() as conn:
            sent = conn.execute(select(t.bulletins).where(t.bulletins.c.sender.like("%editor editor%"))).all()
        bid = drafts.load(db, n).bulletin_id
    finally:
        db.close()
    assert [r.bulletin_id for r in sent].count(bid) == 1


def test_an_approver_sends_their_own_emergency_at_once_but_not_an_ordinary_bulletin(bench: ConsoleBench) -> None:
    approver, csrf = session(bench, "approver")
    status, headers, _ = compose(approver, csrf, title="Họp tổ")
    n = draft_number(headers["location"])
    _, _, page = approver.get(f"/drafts/{n}")
    assert 'id="own-draft"' in page and 'id="approve"' not in page
    assert approver.post(f"/drafts/{n}/approve", {"csrf": csrf})[0] == 403
    assert drafts_status(bench, n) == "submitted"
    status, headers, _ = compose(
        approver, csrf, action="send", title="Lũ quét", priority="emergency", text="Lũ quét, sơ tán ngay."
    )
    assert status == 303 and headers["location"].startswith("/bulletins/")
    bid = headers["location"].removeprefix("/bulletins/")
    db = server_db(bench)
    try:
        with db.engine.connect() as conn:
            row = conn.execute(select(t.bulletins).where(t.bulletins.c.bulletin_id == bid)).one()
    finally:
        db.close()
    assert row.priority == "emergency"
    assert row.sender == "console:approver (editor approver, emergency without a second approver)"
    detail = audit_rows(bench, "/compose")[-1][2] or ""
    assert "an emergency its author sent without a second approver" in detail
    # An editor's "send now" is only a submission: the emergency waits for an approver, who may send it at once.
    editor, e_csrf = session(bench, "editor")
    status, headers, _ = compose(editor, e_csrf, action="send", priority="emergency", text="Lũ quét.")
    assert status == 303 and headers["location"].endswith("?done=submitted")


def test_a_submission_with_broken_rules_is_saved_not_submitted_and_says_why_beside_each_field(
    bench: ConsoleBench,
) -> None:
    editor, csrf = session(bench, "editor")
    status, _, page = compose(editor, csrf, when="daily", daily="05:30, 25:00", repeat="11", target="")
    assert status == 422
    assert "Chưa gửi duyệt: hãy sửa các mục được đánh dấu bên dưới." in page
    problems = dict(re.findall(r'<p class="problem" role="alert" data-field="(\w+)">([^<]*)</p>', page))
    assert problems["daily"].startswith("Các giờ phát trong ngày không hợp lệ: schedule.daily")
    assert problems["repeat"].startswith("Số lần phát không hợp lệ: repeat")
    assert problems["targets"].startswith("Hãy chọn ít nhất một nơi nhận")
    n = int(re.search(r'action="/drafts/(\d+)/save"', page).group(1))  # type: ignore[union-attr]
    assert drafts_status(bench, n) == "draft"  # kept as typed, for the editor to correct
    assert 'value="05:30, 25:00"' in page


def test_a_send_that_fails_says_so_and_the_draft_waits_for_vetting_again(bench: ConsoleBench) -> None:
    """The issuer key cannot be read at the moment of approval: nothing is published, the draft is not lost."""
    editor, e_csrf = session(bench, "editor")
    n = draft_number(compose(editor, e_csrf)[1]["location"])
    approver, a_csrf = session(bench, "approver")
    away = bench.key_file.with_suffix(".away")
    bench.key_file.rename(away)
    try:
        status, _, page = approver.post(f"/drafts/{n}/approve", {"csrf": a_csrf})
    finally:
        away.rename(bench.key_file)
    assert status == 502 and "Không phát được bản tin; bản nháp quay lại chờ duyệt." in page
    assert drafts_status(bench, n) == "submitted"
    assert audit_rows(bench, f"/drafts/{n}/approve")[-1][:2] == ("approver", 502)
    status, headers, _ = approver.post(f"/drafts/{n}/approve", {"csrf": a_csrf})
    assert status == 303 and drafts_status(bench, n) == "sent"


def test_a_draft_past_its_expiry_cannot_be_approved_and_a_past_time_is_pointed_out(bench: ConsoleBench) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
    an_hour_ago = (local - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    editor, e_csrf = session(bench, "editor")
    approver, a_csrf = session(bench, "approver")
    late = draft_number(compose(editor, e_csrf, when="at", at=an_hour_ago)[1]["location"])
    _, _, page = approver.get(f"/drafts/{late}")
    assert 'id="late"' in page and 'id="approve"' in page  # said, and still the approver's call
    expired = draft_number(compose(editor, e_csrf, expires=an_hour_ago)[1]["location"])
    _, _, page = approver.get(f"/drafts/{expired}")
    assert "Bản tin này đã hết hạn lúc" in page and 'id="approve"' not in page
    status, _, page = approver.post(f"/drafts/{expired}/approve", {"csrf": a_csrf})
    assert status == 409 and "đã hết hạn" in page
    assert drafts_status(bench, expired) == "submitted"
    assert approver.post(f"/drafts/{expired}/return", {"csrf": a_csrf, "comment": "Hết hạn, sửa lại."})[0] == 303


def test_an_editor_withdraws_a_draft_and_no_one_can_send_it_then(bench: ConsoleBench) -> None:
    editor, e_csrf = session(bench, "editor")
    n = draft_number(compose(editor, e_csrf)[1]["location"])
    other, o_csrf = session(bench, "admin")
    assert other.post(f"/drafts/{n}/withdraw", {"csrf": o_csrf})[0] == 409  # not theirs to withdraw
    assert editor.post(f"/drafts/{n}/withdraw", {"csrf": e_csrf})[0] == 303
    assert drafts_status(bench, n) == "withdrawn"
    status, _, page = other.post(f"/drafts/{n}/approve", {"csrf": o_csrf})
    assert status == 409 and "Bản nháp này đã bị rút lại." in page
    _, _, listing = editor.get("/drafts")
    assert f'id="draft-{n}"' not in listing


def test_the_pages_speak_english_to_a_user_who_picked_it(bench: ConsoleBench) -> None:
    editor, csrf = session(bench, "editor")
    assert editor.post("/lang", {"csrf": csrf, "lang": "en", "next": "/compose"})[0] == 303
    status, _, page = editor.get("/compose")
    assert status == 200 and "What the voice will say" in page and "Giọng đọc sẽ đọc như sau" not in page
    status, _, page = compose(editor, csrf, text="  ")
    assert status == 422 and "Write the text the voice will read." in page
    assert editor.post("/lang", {"csrf": csrf, "lang": "vi", "next": "/compose"})[0] == 303


def test_the_approver_reads_the_targets_by_the_names_an_admin_gave_them(bench: ConsoleBench) -> None:
    db = server_db(bench)
    try:
        with db.engine.begin() as conn:
            conn.execute(
                t.station_meta.insert().values(
                    station="sim/c001/s00", name="Loa chợ", commune_name="Xã Hòa Bình", updated_at=time.time()
                )
            )
    finally:
        db.close()
    editor, e_csrf = session(bench, "editor")
    form = {"csrf": e_csrf, "title": "Họp", "kind": "text", "text": "Họp dân.", "when": "now", "action": "submit"}
    pairs = [*form.items(), *(("target", to) for to in ("sim/c000", "sim/c001", "sim/c001/s00", "sim/group/x"))]
    request = urllib.request.Request(bench.url + "/compose", data=urllib.parse.urlencode(pairs).encode())
    try:
        editor.opener.open(request, timeout=30)
        raise AssertionError("expected a redirect to the draft")
    except urllib.error.HTTPError as exc:  # the bench's client follows no redirect: the 303 comes as an error
        assert exc.code == 303, exc.read()[:2000]
        n = draft_number(exc.headers["location"])
    approver, _ = session(bench, "approver")
    _, _, page = approver.get(f"/drafts/{n}")
    items = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", li)).strip() for li in re.findall(r"<li>(.*?)</li>", page)]
    assert "Xã c000 sim/c000" in items
    assert "Xã Hòa Bình (c001) sim/c001" in items  # the admin's name, not "Xã Xã Hòa Bình"
    assert "Trạm Loa chợ (s00), Xã Hòa Bình (c001) sim/c001/s00" in items
    assert "Nhóm x sim/group/x" in items
    _, _, form = editor.get("/compose")
    assert "Xã Hòa Bình (c001)</label>" in form and "Xã c000</label>" in form
