"""Import of a CAP 1.2 alert into a draft (issue 15, compose): the fields `loaxa cap` would send, targets by area.

A real server with the console and light stations in the communes the
samples name (tests/data/cap, their times moved to now as tests/test_cap_cli.py
does); the expected fields are what `loaxa cap FILE` prints for the same file.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loaxa.province.cap import MAX_DOCUMENT_BYTES
from loaxa.province.console.cap_import import fold
from loaxa.testing.console import Client, ConsoleBench, chromium, login, shoot, wait_until
from test_cap_cli import DATA, fresh
from test_console_media import logged_in, upload_to

STATIONS = [("qn", "van-don", "loa-1"), ("qn", "van-don", "loa-2"), ("qn", "co-to", "loa-1")]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("console-cap")
    with ConsoleBench(root, province="qn", light=STATIONS) as bench:
        db_path = Path(bench.server.config["data_dir"]) / "province.db"
        deadline = time.monotonic() + 30
        while _count(db_path, "SELECT count(*) FROM stations WHERE online") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        db = sqlite3.connect(db_path)
        with db:  # a commune known by its name only: its station's metadata, as the admin pages keep it
            db.execute(
                "INSERT INTO station_meta (station, commune_name, updated_at) VALUES (?, ?, ?)",
                ("qn/qy/loa-1", "Thị xã Quảng Yên", time.time()),
            )
        db.close()
        yield bench


def _count(db: Path, sql: str) -> int:
    try:
        conn = sqlite3.connect(db)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def post_cap(client: Client, csrf: str | None, *, xml: str | None = None, file: Path | None = None):
    """The compose page's import: a CAP file (multipart) or its XML pasted (a form field)."""
    if file is not None:
        return upload_to(client, "/console/cap-import", csrf, file.name, file.read_bytes())
    status, headers, body = client.post("/console/cap-import", {"csrf": csrf or "", "xml": xml or ""})
    return status, headers, body.encode()


def cli_command(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "loaxa", "cap", str(path)], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout)


def test_an_alert_becomes_the_draft_loaxa_cap_would_send_with_its_areas_as_targets(bench, tmp_path):
    client, csrf = logged_in(bench, "editor")
    alert = fresh("storm_alert.xml", tmp_path)
    status, _, body = post_cap(client, csrf, file=alert)
    assert status == 200, body
    fields = json.loads(body)
    command = cli_command(alert)
    assert fields["text"] == command["text"] and fields["priority"] == command["priority"] == "emergency"
    assert fields["expires"] == command["expires"]
    assert fields["title"] == "Tin bão khẩn cấp: Bão số 3 đang tiến gần vào đất liền"  # the headline
    # Huyện Vân Đồn and Cô Tô are communes with stations; Thị xã Quảng Yên is known by its name in station_meta.
    assert fields["targets"] == ["qn/van-don", "qn/co-to", "qn/qy"]
    assert fields["warnings"] == []
    assert fields["cap"]["bulletin_id"] == command["id"]


def test_areas_that_name_no_commune_are_warnings_and_pasted_xml_works_as_a_file_does(bench, tmp_path):
    client, csrf = logged_in(bench, "editor")
    alert = fresh("flood_alert.xml", tmp_path)
    status, _, body = post_cap(client, csrf, xml=alert.read_text(encoding="utf-8"))
    assert status == 200, body
    fields = json.loads(body)
    assert fields["targets"] == []
    assert fields["warnings"] == [
        "khu vực “Xã Duy Phước” không khớp với xã nào của tỉnh: hãy tự chọn nơi nhận",
        "khu vực “Xã Duy Vinh” không khớp với xã nào của tỉnh: hãy tự chọn nơi nhận",
    ]
    assert fields["text"] == cli_command(alert)["text"] and fields["priority"] == "high"


@pytest.mark.parametrize(
    ("sample", "why"),
    [
        ("entity_attack.xml", "DOCTYPE or entity declaration; refused for safety"),
        ("external_entity.xml", "DOCTYPE or entity declaration; refused for safety"),
        ("malformed.xml", "not well-formed XML"),
        ("no_vietnamese.xml", "no Vietnamese <info>"),
    ],
)
def test_hostile_or_unusable_xml_is_refused_as_loaxa_cap_refuses_it(bench, sample, why):
    client, csrf = logged_in(bench, "editor")
    status, _, body = post_cap(client, csrf, file=DATA / sample)
    assert status == 422 and why in json.loads(body)["error"], body


def test_a_test_alert_or_a_cancel_is_not_a_draft(bench, tmp_path):
    client, csrf = logged_in(bench, "editor")
    status, _, body = post_cap(client, csrf, file=fresh("test_alert.xml", tmp_path))
    assert status == 422 and json.loads(body)["error"] == "không phát: status is Test: never aired live"
    status, _, body = post_cap(client, csrf, file=fresh("storm_cancel.xml", tmp_path))
    assert status == 422 and "thu hồi bản tin đó" in json.loads(body)["error"]


def test_a_document_over_the_cap_limit_is_refused_before_it_is_parsed(bench):
    client, csrf = logged_in(bench, "editor")
    huge = "<alert>" + "x" * (MAX_DOCUMENT_BYTES + 100_000) + "</alert>"
    status, _, _ = post_cap(client, csrf, xml=huge)
    assert status == 413
    status, _, body = post_cap(client, csrf, xml="<alert>" + "x" * (MAX_DOCUMENT_BYTES - 100) + "</alert>")
    assert status == 422 and "namespace" in json.loads(body)["error"]  # read, and refused for what it is


def test_import_is_for_editors_with_the_csrf_token(bench, tmp_path):
    alert = fresh("storm_alert.xml", tmp_path).read_text(encoding="utf-8")
    viewer, csrf = logged_in(bench, "viewer")
    assert post_cap(viewer, csrf, xml=alert)[0] == 403
    editor, _ = logged_in(bench, "editor")
    assert post_cap(editor, None, xml=alert)[0] == 403


def test_pasted_xml_is_read_as_the_text_it_is_whatever_encoding_its_declaration_names(bench, tmp_path):
    client, csrf = logged_in(bench, "editor")
    alert = fresh("flood_alert.xml", tmp_path).read_text(encoding="utf-8")
    declared = alert.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    assert declared != alert
    status, _, body = post_cap(client, csrf, xml=declared)
    assert status == 200, body
    assert json.loads(body)["title"] == "Cảnh báo lũ trên sông Thu Bồn, cấp độ rủi ro thiên tai cấp 2"


@pytest.mark.parametrize(
    ("written", "folded"),
    [("Xã Ba Vì", "ba-vi"), ("ba-vi", "ba-vi"), ("Phường Đông Hải", "dong-hai"), ("THỊ TRẤN  Cô Tô", "co-to")],
)
def test_area_names_and_commune_slugs_meet_without_accents_case_or_the_administrative_word(written, folded):
    assert fold(written) == folded


def test_in_the_browser_an_alert_fills_the_compose_form_and_says_what_is_left_to_do(bench, tmp_path):
    from selenium.webdriver.common.by import By

    xml = fresh("flood_alert.xml", tmp_path).read_text(encoding="utf-8")
    with chromium() as driver:
        login(driver, bench.url, "editor", next="/compose")
        driver.find_element(By.CSS_SELECTOR, "[data-cap-import] summary").click()
        box = driver.find_element(By.CSS_SELECTOR, "[data-cap-xml]")
        driver.execute_script("arguments[0].value = arguments[1];", box, xml)  # pasted, not typed key by key
        driver.find_element(By.CSS_SELECTOR, "[data-cap-go]").click()
        wait_until(driver, lambda d: d.find_element(By.ID, "title").get_attribute("value").startswith("Cảnh báo lũ"))
        assert driver.find_element(By.ID, "text").get_attribute("value").startswith("Cảnh báo lũ trên sông Thu Bồn")
        warnings = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "[data-cap-result] li.problem")]
        assert warnings == [
            "khu vực “Xã Duy Phước” không khớp với xã nào của tỉnh: hãy tự chọn nơi nhận",
            "khu vực “Xã Duy Vinh” không khớp với xã nào của tỉnh: hãy tự chọn nơi nhận",
        ]
        shoot(driver, "cap-import")
