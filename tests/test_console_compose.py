"""Composing a bulletin in the console (issue 15): the form, the bulletin it makes, whom it reaches, in a browser.

The form builds bulletins with `loaxa publish`'s own rules and the
station's validation, so the same choices give the same command; each
broken rule is shown beside its field. The targets tree and its count come
from the stations registry. Then the whole path in a real Chromium: an
editor composes to three stations (real station daemons that require the
server's signature), watches the spoken preview follow the typing, plays
the audio preview, saves and submits; an approver sees the preview and the
count, approves; the three stations play the signed bulletin.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from loaxa.cli import build_parser
from loaxa.cli.publish import BulletinOptions, OptionError, build_command
from loaxa.province.console import compose
from loaxa.province.console import targets as target_tree
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database
from loaxa.province.server.settings import load_settings, parse_settings
from loaxa.testing.console import ConsoleBench, chromium, login, shoot, wait_until
from loaxa.testing.tinyvoice import make_tiny_voice

ICT = timezone(timedelta(hours=7))
NOW = datetime(2026, 12, 1, 16, 0, tzinfo=ICT)
ZONE = "Asia/Ho_Chi_Minh"
SHA = "ab" * 32


def form(**changes: Any) -> dict[str, Any]:
    """The compose form's fields as a browser posts them."""
    base: dict[str, Any] = {
        "title": "Họp dân",
        "kind": "text",
        "text": "Tối nay 19 giờ họp dân.",
        "priority": "normal",
        "target": ["sim/c000"],
        "when": "now",
        "repeat": "1",
        "gap": "3",
    }
    return base | changes


def checked(**changes: Any) -> compose.Checked:
    return compose.check(compose.fields_of(form(**changes)), province="sim", zone=ZONE, bulletin_id="d7-x", now=NOW)


def publish(*argv: str) -> dict[str, Any]:
    args = build_parser().parse_args(["publish", "--province", "sim", "--id", "d7-x", *argv])
    return build_command(args, now=NOW)


# -- the bulletin the form makes -------------------------------------------------------------


def test_the_form_makes_the_bulletin_loaxa_publish_makes_from_the_same_choices() -> None:
    got = checked(
        priority="high",
        when="daily",
        daily="05:30, 17:00",
        days=["mon", "wed"],
        **{"from": "2026-12-02", "until": "2026-12-20"},
        repeat="2",
        gap="5",
        expires="2026-12-20T20:00",
    )
    assert got.problems == {}
    assert got.command == publish(
        "--text",
        "Tối nay 19 giờ họp dân.",
        "--priority",
        "high",
        "--daily",
        "05:30,17:00",
        "--days",
        "mon,wed",
        "--from",
        "2026-12-02",
        "--until",
        "2026-12-20",
        "--repeat",
        "2",
        "--gap",
        "5",
        "--expires",
        "2026-12-20T20:00",
    )
    assert got.command["expires"] == "2026-12-20T20:00:00+07:00"  # a time without offset is the province's
    once = checked(when="at", at="2026-12-01T19:00").command
    same = ("--priority", "normal", "--repeat", "1", "--gap", "3")  # the form always says them
    assert once == publish("--text", "Tối nay 19 giờ họp dân.", "--at", "2026-12-01T19:00", *same)
    assert once is not None and once["schedule"] == {"at": "2026-12-01T19:00:00+07:00"}


def test_a_recording_and_a_bulletin_in_parts_are_the_commands_publish_makes() -> None:
    recorded = checked(kind="audio", audio_url="http://p/media/a.mp3", audio_sha256=SHA.upper()).command
    same = ("--priority", "normal", "--repeat", "1", "--gap", "3")
    assert recorded == publish("--audio-url", "http://p/media/a.mp3", "--sha256", SHA, *same)
    parts = checked(
        kind="parts",
        part_kind=["text", "audio", "text"],
        part_text=["Thông báo họp dân.", "", ""],  # an empty third part is left out
        part_url=["", "http://p/media/hmong.ogg", ""],
        part_sha256=["", SHA, ""],
        part_filename=["", "hmong.ogg", ""],
    ).command
    assert parts == publish(
        "--part-text",
        "Thông báo họp dân.",
        "--part-audio",
        "http://p/media/hmong.ogg",
        "--sha256",
        SHA,
        *same,
    )


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"title": ""}, "title", "Give the bulletin a title."),
        ({"text": "   "}, "text", "Write the text the voice will read."),
        ({"target": []}, "targets", "Choose at least one target"),
        ({"target": ["hue/c1"]}, "targets", "not in province sim"),
        ({"target": ["sim/c000/s00/x"]}, "targets", "expected P, P/C, P/C/S or P/group/G"),
        ({"kind": "audio"}, "audio", "Upload the recording"),
        ({"kind": "parts"}, "parts", "Add at least one part"),
        ({"kind": "parts", "part_kind": ["text"] * 21, "part_text": ["Tin."] * 21}, "parts", "at most 20 parts"),
        ({"kind": "parts", "part_kind": ["audio"], "part_url": ["http://p/a.mp3"]}, "parts", "uploaded file"),
        ({"when": "daily", "daily": "05:30, 25:00"}, "daily", "These times of day are not valid: schedule.daily"),
        ({"when": "daily", "daily": ""}, "daily", "Give the times of day it airs"),  # not "at once" instead
        ({"when": "at", "at": ""}, "at", "Give the time it airs."),
        (
            {"when": "daily", "daily": "05:30", "from": "2026-12-09", "until": "2026-12-02"},
            "until",
            "until 2026-12-02 is before from 2026-12-09",
        ),
        ({"when": "daily", "daily": "05:30", "from": "9/12/2026"}, "from", "is not a date YYYY-MM-DD"),
        ({"when": "at", "at": "tối nay"}, "at", "This time is not valid: 'tối nay' is not a time"),
        ({"repeat": "11"}, "repeat", "This number of plays is not valid: repeat"),
        ({"repeat": "hai"}, "repeat", "Write a whole number."),
        ({"gap": "601"}, "gap", "This gap is not valid: gap_s"),
        ({"expires": "mai"}, "expires", "This expiry is not valid: 'mai' is not a time"),
        ({"text": "x" * 20_001}, "text", "over the 20000-character limit"),
    ],
)
def test_each_broken_rule_is_shown_beside_its_field_in_words(changes: dict[str, Any], field: str, words: str) -> None:
    got = checked(**changes)
    assert got.command is None
    said = got.said(lambda message: message)
    assert field in said, said
    assert any(words in line for line in said[field]), said


def test_every_broken_rule_is_shown_at_once_not_one_per_submission() -> None:
    """The station's model checks the schedule only once its fields pass; the form still shows both."""
    got = checked(when="daily", daily="25:00", repeat="11", gap="-1")
    assert set(got.problems) == {"daily", "repeat", "gap"}


def test_the_problems_are_in_vietnamese_for_a_vietnamese_reader() -> None:
    from loaxa.province.console.web import translations

    said = checked(when="daily", daily="25:00", target=[]).said(translations("vi").gettext)
    assert said["daily"][0].startswith("Các giờ phát trong ngày không hợp lệ: schedule.daily")
    assert said["targets"] == ["Hãy chọn ít nhất một nơi nhận: toàn tỉnh, một xã, một trạm hoặc một nhóm."]


def test_publish_names_the_option_of_each_broken_rule_and_keeps_its_words() -> None:
    """The refactor for the console: `loaxa publish` says the same, and the form learns which field it was."""
    cases = [
        (BulletinOptions(text="x", at="17:00", daily="05:30"), "at", "--at and --daily do not go together"),
        (BulletinOptions(text="x", days="mon"), "daily", "--days, --from and --until go with --daily"),
        (BulletinOptions(audio_url="http://p/a.mp3"), "sha256", "--audio-url needs --sha256"),
        (BulletinOptions(text="x", expires="mai"), "expires", "--expires 'mai' is not a time"),
        (BulletinOptions(text="x", daily="05:30", start="9/12"), "from", "--from '9/12' is not a date"),
        (BulletinOptions(text="x", tz="Mars/Olympus"), "tz", "is not a time zone"),
        (BulletinOptions(cancel="bad id!"), "id", "must be 1-64"),
        (BulletinOptions(), "text", "one of --text"),
    ]
    for options, option, words in cases:
        with pytest.raises(OptionError, match=words) as caught:
            build_command(options, now=NOW)
        assert caught.value.option == option
    # Every field of BulletinOptions is an option the command line parses (so one function serves both).
    parsed = vars(build_parser().parse_args(["publish", "--province", "sim", "--text", "x"]))
    assert {f.name for f in dataclasses.fields(BulletinOptions)} <= set(parsed)
    args = argparse.Namespace(**parsed)
    options = BulletinOptions(**{f.name: parsed[f.name] for f in dataclasses.fields(BulletinOptions)})
    assert build_command(args, now=NOW) == build_command(options, now=NOW)


# -- targets ------------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database.open(parse_settings({"province": {"id": "sim"}, "data_dir": str(tmp_path)}))
    d.migrate()
    rows = [
        ("sim/ba-vi/loa-1", ["coastal"]),
        ("sim/ba-vi/loa-2", []),
        ("sim/tan-linh/loa-1", ["coastal"]),
        ("sim/tan-linh/loa-2", None),  # does not report its groups
        ("hue/phu-vang/loa-1", ["coastal"]),  # another province on the same broker
    ]
    with d.engine.begin() as conn:
        for station, groups in rows:
            conn.execute(
                t.stations.insert().values(
                    station=station,
                    commune=station.split("/")[1],
                    first_seen_at=time.time(),
                    last_seen_at=time.time(),
                    groups=json.dumps(groups) if groups is not None else None,
                )
            )
        conn.execute(
            t.station_meta.insert().values(
                station="sim/ba-vi/loa-1", name="Loa chợ", commune_name="Xã Ba Vì", updated_at=time.time()
            )
        )
    yield d
    d.close()


def test_the_targets_tree_is_the_province_its_communes_and_stations_with_their_names(db: Database) -> None:
    tree = target_tree.tree(db, "sim")
    assert (tree.province.path, tree.province.count) == ("sim", 4)
    assert [(c.path, c.label, c.count, c.named) for c in tree.province.children] == [
        ("sim/ba-vi", "Xã Ba Vì (ba-vi)", 2, True),  # shown as named, not "Xã Xã Ba Vì"
        ("sim/tan-linh", "tan-linh", 2, False),
    ]
    assert [(s.path, s.label, s.named) for s in tree.province.children[0].children] == [
        ("sim/ba-vi/loa-1", "Loa chợ (loa-1)", True),
        ("sim/ba-vi/loa-2", "loa-2", False),
    ]
    assert [(g.path, g.count) for g in tree.groups] == [("sim/group/coastal", 2)]


@pytest.mark.parametrize(
    ("targets", "reached"),
    [
        (["sim"], 4),
        (["sim/ba-vi"], 2),
        (["sim/ba-vi", "sim/ba-vi/loa-1"], 2),  # counted once
        (["sim/group/coastal"], 2),  # the members that say so
        (["sim/group/coastal", "sim/tan-linh"], 3),
        (["sim/ba-vi/loa-9"], 0),
        ([], 0),
    ],
)
def test_the_count_is_the_stations_the_registry_says_the_targets_reach(
    db: Database, targets: list[str], reached: int
) -> None:
    assert target_tree.count(db, "sim", targets) == (reached, [])


def test_a_target_elsewhere_is_counted_as_not_valid_here(db: Database) -> None:
    assert target_tree.count(db, "sim", ["hue", "sim/ba-vi", "not a target"]) == (2, ["hue", "not a target"])


# -- in a real browser ---------------------------------------------------------------------------

STATIONS = [("sim", "c000", "s00"), ("sim", "c000", "s01"), ("sim", "c001", "s00")]
VOICE = "vi_VN-tiny-x_low"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleBench]:
    root = tmp_path_factory.mktemp("console-compose")
    make_tiny_voice(root / "voices", name=VOICE)
    console = {"voice": VOICE, "voices_dir": str(root / "voices")}
    with ConsoleBench(root, real=STATIONS, light=[("sim", "c002", "s00")], console=console) as bench:
        yield bench


def server_db(bench: ConsoleBench) -> Database:
    return Database.open(load_settings(bench.server.config_path))


def registry_has(bench: ConsoleBench, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        db = server_db(bench)
        try:
            with db.engine.connect() as conn:
                if len(conn.execute(select(t.stations.c.station)).all()) >= count:
                    return
        finally:
            db.close()
        time.sleep(0.2)
    raise AssertionError(f"the registry has not seen {count} stations in {timeout_s:g} s")


def text_of(driver: Any, css: str) -> str:
    """The text of the first element matching `css`; "" while there is none (or the page it was on is going)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return str(found[0].text) if found else ""
    except StaleElementReferenceException:
        return ""


def test_an_editor_composes_and_an_approver_sends_it_to_three_stations_in_a_browser(bench: ConsoleBench) -> None:
    from selenium.webdriver.common.by import By

    registry_has(bench, 4)
    with chromium() as driver:
        login(driver, bench.url, "editor", next="/compose")
        assert driver.current_url.endswith("/compose")
        driver.find_element(By.NAME, "title").send_keys("Bão số 3")
        text = driver.find_element(By.ID, "text")
        text.send_keys("Bão số 3 đổ bộ lúc 17h.")
        wait_until(driver, lambda d: "mười bảy giờ" in text_of(d, "#spoken-preview"))
        text.send_keys(" Nhiệt độ 25°C.")  # the preview follows the typing
        wait_until(driver, lambda d: "hai mươi lăm độ xê" in text_of(d, "#spoken-preview"))
        assert "mười bảy giờ" in text_of(driver, "#spoken-preview")
        # Targets: commune c000 (two stations) and one station of c001: three, counted live.
        driver.find_element(By.CSS_SELECTOR, 'input[name="target"][value="sim/c000"]').click()
        wait_until(driver, lambda d: text_of(d, "#target-count").startswith("2"))
        driver.find_element(By.CSS_SELECTOR, 'details:has(input[value="sim/c001"]) summary').click()
        driver.find_element(By.CSS_SELECTOR, 'input[name="target"][value="sim/c001/s00"]').click()
        wait_until(driver, lambda d: text_of(d, "#target-count").startswith("3"))
        # The audio preview plays in the page's <audio> element.
        driver.find_element(By.CSS_SELECTOR, "button[data-audio-preview]").click()
        wait_until(
            driver,
            lambda d: d.execute_script("const a = document.getElementById('audio-preview'); return a.duration > 0"),
        )
        assert f"piper:{VOICE}" in text_of(driver, "[data-audio-status]")
        driver.execute_script("document.getElementById('compose').scrollIntoView()")
        shoot(driver, "compose")
        driver.find_element(By.CSS_SELECTOR, 'button[value="save"]').click()
        wait_until(driver, lambda d: "done=saved" in d.current_url)
        draft = int(driver.current_url.split("/drafts/")[1].split("?")[0])
        assert "Đã lưu bản nháp." in text_of(driver, ".done")
        driver.find_element(By.ID, "submit-draft").click()
        wait_until(driver, lambda d: "done=submitted" in d.current_url)
        assert text_of(driver, ".status") == "chờ duyệt"
        assert not driver.find_elements(By.ID, "approve")  # an editor has no approve button

        driver.delete_all_cookies()
        login(driver, bench.url, "approver", next=f"/drafts/{draft}")
        wait_until(driver, lambda d: "hai mươi lăm độ xê" in text_of(d, "#spoken-preview"))
        assert text_of(driver, "#target-count") == "3"
        assert "Bão số 3 đổ bộ lúc 17h." in text_of(driver, "blockquote.bulletin-text")
        driver.find_element(By.CSS_SELECTOR, "button[data-audio-preview]").click()
        wait_until(
            driver,
            lambda d: d.execute_script("const a = document.getElementById('audio-preview'); return a.duration > 0"),
        )
        shoot(driver, "vetting")
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(driver).double_click(driver.find_element(By.ID, "approve")).perform()  # an impatient approver
        wait_until(driver, lambda d: "/bulletins/" in d.current_url)
        bulletin = driver.current_url.split("/bulletins/")[1]
        wait_until(driver, lambda d: bulletin in text_of(d, "main h1"))  # the bulletin's watch page

        # The stations accept only what the server's key signed; each one played it.
        deadline = time.monotonic() + 60
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            db = server_db(bench)
            try:
                with db.engine.connect() as conn:
                    b, s = t.bulletins.c, t.bulletin_stations.c
                    rows = conn.execute(
                        select(s.station, s.status)
                        .select_from(t.bulletin_stations.join(t.bulletins, b.id == s.bulletin))
                        .where(b.bulletin_id == bulletin)
                    ).all()
                    sender = conn.execute(select(b.sender).where(b.bulletin_id == bulletin)).scalar_one()
            finally:
                db.close()
            statuses = {r.station: r.status for r in rows}
            if statuses and set(statuses.values()) == {"finished"}:
                break
            time.sleep(0.2)
        assert statuses == {"/".join(p): "finished" for p in STATIONS}
        assert sender == "console:approver (editor editor)"
        db = server_db(bench)
        try:
            with db.engine.connect() as conn:
                a = t.audit.c
                clicks = conn.execute(select(a.status).where(a.path == f"/drafts/{draft}/approve")).scalars().all()
        finally:
            db.close()
        assert clicks == [303]  # the double click made one request
        assert bench.light_fleet.last_commands()["sim/c002/s00"] != bulletin  # not addressed: not received

        # A viewer: no compose link, and a forged approval from their own browser session is refused.
        driver.delete_all_cookies()
        login(driver, bench.url, "viewer", next=f"/drafts/{draft}")
        wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "nav.main a"))  # the refusal page, with the nav
        assert not driver.find_elements(By.CSS_SELECTOR, 'nav a[href="/compose"]')
        refused = driver.execute_script(
            "return fetch(arguments[0], {method: 'POST', headers: {'X-CSRF-Token':"
            " document.querySelector('meta[name=csrf-token]').content}}).then(r => r.status)",
            f"/drafts/{draft}/approve",
        )
        assert refused == 403


def cap_alert(expires: datetime) -> str:
    """A CAP 1.2 alert for commune c000 of the bench's province, as a weather service sends it."""
    sent = datetime.now(ICT).replace(microsecond=0)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>KTTV-2026-12-01-07</identifier><sender>kttv@tinh.example.vn</sender>
  <sent>{sent.isoformat()}</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>vi-VN</language><category>Met</category><event>Mưa lớn</event>
    <urgency>Expected</urgency><severity>Moderate</severity><certainty>Likely</certainty>
    <expires>{expires.isoformat()}</expires>
    <headline>Cảnh báo mưa lớn xã c000</headline>
    <description>Mưa lớn 100 mm trong 24 giờ tới.</description>
    <area><areaDesc>Xã c000</areaDesc></area>
  </info>
</alert>"""


def test_an_imported_cap_alert_fills_the_form_and_a_recorded_part_is_uploaded(
    bench: ConsoleBench, tmp_path: Path
) -> None:
    """The CAP import fills title, text, priority, expiry and communes; a part's recording goes through uploads."""
    import hashlib

    from selenium.webdriver.common.by import By

    from audio_servers import tone_file
    from loaxa.province.cap import priority_for

    registry_has(bench, 4)
    expires = (datetime.now(ICT) + timedelta(hours=6)).replace(second=0, microsecond=0)
    recording = tone_file(tmp_path, "wav", seconds=1.5)
    with chromium() as driver:
        login(driver, bench.url, "editor", next="/compose")
        driver.find_element(By.CSS_SELECTOR, "details.cap-import summary").click()
        box = driver.find_element(By.CSS_SELECTOR, "[data-cap-xml]")
        driver.execute_script("arguments[0].value = arguments[1]", box, cap_alert(expires))
        driver.find_element(By.CSS_SELECTOR, "[data-cap-go]").click()
        wait_until(driver, lambda d: d.find_element(By.NAME, "title").get_attribute("value"))
        assert driver.find_element(By.NAME, "title").get_attribute("value") == "Cảnh báo mưa lớn xã c000"
        assert "Mưa lớn 100 mm" in driver.find_element(By.ID, "text").get_attribute("value")
        priority = driver.find_element(By.CSS_SELECTOR, 'input[name="priority"]:checked').get_attribute("value")
        assert priority == priority_for("Expected", "Moderate")
        assert driver.find_element(By.NAME, "expires").get_attribute("value") == expires.strftime("%Y-%m-%dT%H:%M")
        checked_boxes = driver.find_elements(By.CSS_SELECTOR, 'input[name="target"]:checked')
        chosen = [e.get_attribute("value") for e in checked_boxes]
        assert chosen == ["sim/c000"]
        wait_until(driver, lambda d: text_of(d, "#target-count").startswith("2"))
        wait_until(driver, lambda d: "một trăm mi li mét" in text_of(d, "#spoken-preview"))

        # The same words, then their recorded version: a bulletin in two parts.
        driver.find_element(By.CSS_SELECTOR, 'input[name="kind"][value="parts"]').click()
        rows = driver.find_elements(By.CSS_SELECTOR, "#parts li.part")
        assert len(rows) == 2
        rows[0].find_element(By.NAME, "part_text").send_keys("Cảnh báo mưa lớn 100 mm.")
        wait_until(driver, lambda d: "một trăm mi li mét" in text_of(d, "#parts li.part .part-spoken"))
        rows[1].find_element(By.CSS_SELECTOR, "input[data-upload]").send_keys(str(recording))
        wait_until(driver, lambda d: rows[1].get_attribute("data-uploaded"))
        assert rows[1].get_attribute("data-uploaded") == hashlib.sha256(recording.read_bytes()).hexdigest()
        wait_until(
            driver, lambda d: d.execute_script("return arguments[0].querySelector('audio').duration > 1", rows[1])
        )
        driver.find_element(By.CSS_SELECTOR, "[data-add-part]").click()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#parts li.part")) == 3
        driver.find_elements(By.CSS_SELECTOR, "#parts li.part [data-remove-part]")[2].click()
        driver.find_element(By.ID, "submit-draft").click()
        wait_until(driver, lambda d: "done=submitted" in d.current_url)
        draft = int(driver.current_url.split("/drafts/")[1].split("?")[0])

    db = server_db(bench)
    try:
        from loaxa.province.console import drafts

        sent = drafts.load(db, draft)
    finally:
        db.close()
    digest = hashlib.sha256(recording.read_bytes()).hexdigest()
    assert sent.command is not None and sent.targets == ["sim/c000"]
    assert sent.command["priority"] == priority
    assert sent.command["expires"] == expires.isoformat()
    assert sent.command["parts"][0] == {"text": "Cảnh báo mưa lớn 100 mm."}
    audio = sent.command["parts"][1]["audio"]
    assert audio["sha256"] == digest and audio["url"].endswith("/media/" + audio["url"].rsplit("/", 1)[1])
    assert digest in audio["url"]


def test_the_compose_page_of_a_5000_station_province_is_light_on_a_weak_link(tmp_path: Path) -> None:
    """Figures (printed): the targets tree of 5,000 stations in 500 communes, as the browser receives it (gzip)."""
    import gzip
    import statistics
    import urllib.request

    from loaxa.province.simfleet import station_path
    from loaxa.testing.console import Client

    with ConsoleBench(tmp_path) as bench:
        db = server_db(bench)
        now = time.time()
        try:
            with db.engine.begin() as conn:
                paths = [station_path(i) for i in range(5000)]
                conn.execute(
                    t.stations.insert(),
                    [
                        {
                            "station": "/".join(p),
                            "commune": p[1],
                            "first_seen_at": now,
                            "last_seen_at": now,
                            "groups": json.dumps(["coastal"] if i % 7 == 0 else []),
                        }
                        for i, p in enumerate(paths)
                    ],
                )
        finally:
            db.close()
        editor = Client(bench.url)
        assert editor.login("editor") == 303

        def fetch(path: str) -> tuple[float, bytes, str]:
            request = urllib.request.Request(bench.url + path, headers={"Accept-Encoding": "gzip"})
            t0 = time.perf_counter()
            with editor.opener.open(request, timeout=30) as answer:
                body = answer.read()
                encoding = answer.headers.get("Content-Encoding", "")
            return time.perf_counter() - t0, body, encoding

        page = [fetch("/compose") for _ in range(5)]
        seconds, wire, encoding = statistics.median(p[0] for p in page), page[-1][1], page[-1][2]
        html = gzip.decompress(wire).decode() if encoding == "gzip" else wire.decode()
        assert html.count('name="target"') == 1 + 500 + 5000 + 1  # the province, communes, stations, a group
        count = [fetch("/targets/count?target=sim&target=sim/group/coastal") for _ in range(5)]
        count_s = statistics.median(c[0] for c in count)
        print(
            f"\ncompose page, 5000 stations: median {seconds * 1000:.0f} ms, {len(wire) / 1024:.0f} KiB on the wire "
            f"({encoding or 'identity'}), {len(html.encode()) / 1024:.0f} KiB of HTML; "
            f"target count of the province: median {count_s * 1000:.0f} ms"
        )
        assert encoding == "gzip" and len(wire) < 200 * 1024  # sanity: a weak 4G link carries it in seconds
        assert seconds < 5.0 and count_s < 5.0


def test_an_approver_sends_an_emergency_of_their_own_at_once_from_the_compose_page(bench: ConsoleBench) -> None:
    """Emergencies never wait for a second person: the button shows for an emergency, and the stations play it."""
    from selenium.webdriver.common.by import By

    registry_has(bench, 4)
    with chromium() as driver:
        login(driver, bench.url, "approver", next="/compose")
        send_now = driver.find_element(By.CSS_SELECTOR, "button[data-emergency-only]")
        assert not send_now.is_displayed()  # an ordinary bulletin is vetted by someone else
        driver.find_element(By.NAME, "title").send_keys("Lũ quét")
        driver.find_element(By.ID, "text").send_keys("Lũ quét tại thôn Đông, bà con sơ tán ngay.")
        driver.find_element(By.CSS_SELECTOR, 'input[name="priority"][value="emergency"]').click()
        assert send_now.is_displayed()
        driver.find_element(By.CSS_SELECTOR, 'input[name="target"][value="sim"]').click()
        wait_until(driver, lambda d: text_of(d, "#target-count").startswith("4"))
        send_now.click()
        wait_until(driver, lambda d: "/bulletins/" in d.current_url)
        bulletin = driver.current_url.split("/bulletins/")[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and bench.light_fleet.last_commands() != {"sim/c002/s00": bulletin}:
        time.sleep(0.2)
    assert bench.light_fleet.last_commands() == {"sim/c002/s00": bulletin}
    db = server_db(bench)
    try:
        with db.engine.connect() as conn:
            b = t.bulletins.c
            row = conn.execute(select(b.priority, b.sender).where(b.bulletin_id == bulletin)).one()
    finally:
        db.close()
    assert row.priority == "emergency"
    assert row.sender == "console:approver (editor approver, emergency without a second approver)"
