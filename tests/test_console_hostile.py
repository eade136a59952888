"""The console under attack: a hostile station, a hostile web client, a careless operator.

A real province server (child process) with the console, a real Mosquitto,
a station that is nothing but a paho client publishing whatever it likes,
plain HTTP for forgers and scripts, and a real headless Chromium for what an
operator's browser would run. Each test names what it guards.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest

from loaxa.testing.console import Client, ConsoleBench, chromium, login, wait_until

MARK = "window.__pwned=1"
BREAKERS = [
    "<script>window.__pwned=1</script>",
    '"><img src=x onerror="window.__pwned=1">',
    "</title><script>window.__pwned=1</script>",
    "]]><svg onload=window.__pwned=1><!--",
    "\x00\x07\x1b[31m\u202eevil\u202c\ufffe",
    "=cmd|' /C calc'!A0",
]


def _publish(broker, topic: str, payloads: list[dict], retain: bool = False) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for body in payloads:
            client.publish(topic, json.dumps(body), qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def _now(offset_s: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset_s, UTC).isoformat(timespec="seconds")


def _hostile_state(evil: str) -> dict:
    return {
        "at": _now(),
        "online": True,
        "version": evil,
        "voice": {"engine": evil, "fallback": "yes"},
        "audio": {"error": evil},
        "amplifier": {"fault": evil},
        "storage": {"fault": ["a", {"b": evil}]},  # a list where a string goes
        "on_air": evil,
        "groups": [evil, 7, None, {"x": evil}],
        "queue": "many",
        "clock_synced": None,
    }


def _hostile_events(evil: str, first_seq: int) -> list[dict]:
    out = []
    for i, text in enumerate([*BREAKERS, evil, "x" * 1_000_000]):
        seq = first_seq + 2 * i
        common = {"id": text[:64] or "empty", "rev": 1, "occurrence": text[:40]}
        out.append({**common, "seq": seq, "event": "started", "at": _now(-60), "detail": text})
        out.append({**common, "seq": seq + 1, "event": "failed", "at": _now(-30), "detail": text})
    out.append({"seq": first_seq + 999, "event": ["started"], "at": 12, "id": {"x": 1}, "detail": [1, 2]})
    out.append({"seq": first_seq + 1000, "event": None, "at": None, "id": None, "rev": "1", "detail": None})
    return out


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    with ConsoleBench(tmp_path_factory.mktemp("console-hostile")) as b:
        evil = "".join(BREAKERS)
        _publish(b.broker, "loaxa/v1/sim/c666/s01/state", [_hostile_state(evil)], retain=True)
        _publish(b.broker, "loaxa/v1/sim/c666/s01/event", _hostile_events(evil, 1))
        _publish(
            b.broker,
            "loaxa/v1/sim/c001/s01/event",
            [{"seq": 1, "event": "started", "id": "good-1", "rev": 1, "at": _now(-20), "occurrence": "o"}],
        )
        admin = Client(b.url)
        assert admin.login("admin") == 303
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = admin.get("/fleet")[2]
            if "c666" in body and "c001" in body:
                break
            time.sleep(0.2)
        b.token = b.cli("token", "add", "hostile", "--scope", "send").strip()
        sent = b.api(
            b.token, "/bulletins", {"targets": ["sim/c666"], "bulletin": {"id": BULLETIN, "text": "Xin chào."}}
        )
        assert sent["stations"] == 1
        _publish(b.broker, "loaxa/v1/sim/c666/s01/event", [_receipt(2000, "started", evil)])
        yield b


BULLETIN = "b-hostile-1"


def _receipt(seq: int, event: str, detail) -> dict:
    return {"seq": seq, "event": event, "id": BULLETIN, "rev": 1, "at": _now(), "occurrence": detail, "detail": detail}


def test_hostile_station_strings_are_escaped_in_every_page_and_no_script_runs(bench):
    """Fleet, map, reports and the bulletins list show what a station sent as text, never as markup."""
    pages = [
        "/fleet",
        "/fleet/map.svg",
        "/reports",
        "/reports?scope=sim/c666/s01",
        "/bulletins",
        f"/bulletins/{BULLETIN}",
    ]
    with chromium() as driver:
        login(driver, bench.url, "admin")
        for page in pages:
            driver.get(bench.url + page)
            wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete")
            assert driver.execute_script("return window.__pwned === undefined"), page
            inline = driver.execute_script("return document.querySelectorAll('script:not([src])').length")
            assert inline == 0, page
        assert "<script>window.__pwned=1</script>" in driver.find_element("css selector", "main").text
        # The grid stays open: what arrives now comes through the live stream.
        _publish(bench.broker, "loaxa/v1/sim/c666/s01/event", [_receipt(2001, "failed", "".join(BREAKERS))])
        wait_until(driver, lambda d: "failed" in d.page_source or "lỗi" in d.page_source.lower())
        time.sleep(1)
        assert driver.execute_script("return window.__pwned === undefined")
        driver.get(bench.url + "/fleet")
        shown = driver.find_element("css selector", "main").text
        assert '"><img src=x onerror=' in shown  # shown as text, escaped
    client = Client(bench.url)
    assert client.login("viewer") == 303
    for page in pages:
        status, _, body = client.get(page)
        assert status == 200, (page, body[:500])
        assert "<script>window" not in body and "onerror=" not in body.replace("onerror=&#34;", ""), page
        assert "<svg onload" not in body, page


def test_the_report_downloads_neutralise_formulas_and_survive_control_characters(bench):
    """A cell a station wrote never starts a formula in the operator's spreadsheet; XLSX still downloads."""
    from openpyxl import load_workbook

    client = Client(bench.url)
    assert client.login("viewer") == 303
    status, _, text = client.get("/reports/download?scope=sim/c666/s01&format=csv")
    assert status == 200, text[:500]
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) >= len(BREAKERS)
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r", row
    assert any("cmd|" in (row["detail"] or "") for row in rows)  # the text is kept, only made inert

    req = __import__("urllib.request").request.Request(bench.url + "/reports/download?scope=sim/c666/s01&format=xlsx")
    for c in client.jar:
        req.add_header("Cookie", f"{c.name}={c.value}")
    with client.opener.open(req, timeout=30) as answer:
        assert answer.status == 200
        book = load_workbook(io.BytesIO(answer.read()))
    cells = [cell for sheet in book.worksheets for r in sheet.iter_rows() for cell in r]
    assert cells and all(cell.data_type != "f" for cell in cells)


def test_the_registry_api_returns_what_a_station_sent_as_json_strings_not_markup(bench):
    """/api/v1/stations answers with the hostile station in it, each text field a string or null."""
    stations = {s["station"]: s for s in bench.api(bench.token, "/stations")}
    hostile = stations["sim/c666/s01"]
    text = json.dumps(hostile)
    assert "version" in hostile and isinstance(hostile["version"], (str, type(None)))
    assert len(text) < 200_000, len(text)


def test_the_ingest_kept_the_other_station_while_the_hostile_one_raged(bench):
    """c001's ordinary event was stored beside c666's garbage, and the server still answers."""
    import sqlite3

    db = sqlite3.connect(bench.data_dir / "province.db")
    try:
        stations = {r[0] for r in db.execute("select distinct station from events")}
    finally:
        db.close()
    assert {"sim/c001/s01", "sim/c666/s01"} <= stations


@pytest.mark.parametrize(
    "given",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/\t/evil.example",
        "/%2F/evil.example",
        "\\\\evil.example",
        " //evil.example",
        "/\n/evil.example",
        "javascript:alert(1)",
    ],
)
def test_login_next_never_leads_to_another_site(bench, given):
    client = Client(bench.url)
    token = client.csrf()
    from loaxa.testing.console import password

    status, headers, _ = client.post(
        "/login", {"csrf": token, "name": "viewer", "password": password("viewer"), "next": given}
    )
    assert status == 303
    where = headers["location"]
    assert where.startswith("/") and not where.startswith(("//", "/\\")), where
    assert "\t" not in where and "\n" not in where and "evil" not in where.split("?")[0].lstrip("/").split("/")[0]


def _routes(bench):
    """The app's route table, as built by the server's own code."""
    from starlette.routing import Route

    from loaxa.province.server.api import Context, build_app
    from loaxa.province.server.database import Database
    from loaxa.province.server.settings import load_settings

    settings = load_settings(bench.server.config_path)
    app = build_app(Context(settings=settings, db=Database.open(settings), publish=None, status=dict))  # type: ignore[arg-type]
    out = []
    for route in app.router.routes:
        if isinstance(route, Route) and not route.path.startswith(("/api/", "/openapi")):
            path = route.path.replace("{id}", "1").replace("{bulletin_id}", "b1").replace("{name}", "x.wav")
            out.extend((m, path) for m in sorted(route.methods or ()) if m != "HEAD")
    return out


def test_every_state_changing_route_refuses_a_request_without_the_csrf_token(bench):
    """Walks the route table: a route added later cannot forget the check."""
    admin = Client(bench.url)
    assert admin.login("admin") == 303
    posts = [(m, p) for m, p in _routes(bench) if m not in ("GET", "HEAD", "OPTIONS")]
    assert len(posts) >= 15
    for method, path in posts:
        if path == "/login":
            status = Client(bench.url).request(method, path, {"name": "admin", "password": "x"})[0]
        else:
            status = admin.request(method, path, {"name": "x", "action": "add"})[0]
        assert status in (403,), (method, path, status)


def test_a_viewer_is_refused_every_route_above_its_role(bench):
    """Walks the route table with a viewer's session: every editor, approver and admin page says 403."""
    viewer = Client(bench.url)
    assert viewer.login("viewer") == 303
    token = viewer.csrf("/fleet")
    viewer_ok = (
        "/",
        "/login",
        "/lang",
        "/logout",
        "/fleet",
        "/fleet/map.svg",
        "/reports",
        "/reports/download",
        "/bulletins",
        "/bulletins/b1",
        "/bulletins/b1/live",
        "/media/x.wav",
    )
    checked = 0
    for method, path in _routes(bench):
        if path in viewer_ok or path.startswith("/static"):
            continue
        fields = {"csrf": token} if method != "GET" else None
        status = viewer.request(method, path, fields)[0]
        assert status == 403, (method, path, status)
        checked += 1
    assert checked >= 15


def test_the_session_id_changes_at_login_and_logout_ends_it_on_the_server(bench):
    client = Client(bench.url)
    assert client.login("viewer") == 303
    first = client.cookie("loaxa_session")
    stolen = Client(bench.url)
    stolen.jar.set_cookie(next(c for c in client.jar if c.name == "loaxa_session"))
    assert stolen.get("/fleet")[0] == 200
    assert client.post("/logout", {"csrf": client.csrf("/fleet")})[0] == 303
    assert stolen.get("/fleet")[0] == 303  # the copied cookie died with the session
    again = Client(bench.url)
    again.jar.set_cookie(next(c for c in stolen.jar if c.name == "loaxa_session"))
    assert again.login("viewer") == 303
    assert again.cookie("loaxa_session") != first  # a planted cookie is never the one that logs in


@pytest.mark.parametrize(
    "path",
    [
        "/media/..%2F..%2Fprovince.db",
        "/media/%2e%2e/province.yaml",
        "/static/..%2F..%2F__init__.py",
        "/static/../web.py",
        "/media/.%00.wav",
    ],
)
def test_media_and_static_never_serve_files_outside_their_folder(bench, path):
    client = Client(bench.url)
    assert client.login("viewer") == 303
    status, _, body = client.get(path)
    assert status in (400, 404), (path, status)
    assert "import " not in body and "SQLite" not in body


def test_huge_and_malformed_form_bodies_are_answered_not_crashed(bench):
    admin = Client(bench.url)
    assert admin.login("admin") == 303
    token = admin.csrf("/admin/users")
    many = {f"f{i}": "x" for i in range(20_000)}
    assert admin.post("/admin/users", {**many, "csrf": token})[0] in (400, 413)
    status = admin.request(
        "POST",
        "/admin/users",
        None,
        headers={"Content-Type": "multipart/form-data; boundary=zz", "X-CSRF-Token": token},
    )[0]
    assert status in (400, 403)
    req_body = b'--zz\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n' + token.encode() + b"\r\n--zz"
    import urllib.request

    req = urllib.request.Request(
        bench.url + "/admin/users",
        data=req_body,
        method="POST",
        headers={"Content-Type": "multipart/form-data; boundary=zz"},
    )
    for c in admin.jar:
        req.add_header("Cookie", f"{c.name}={c.value}")
    try:
        with admin.opener.open(req, timeout=30) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status in (400, 403)
    assert Client(bench.url).get("/login")[0] == 200


def test_slow_clients_and_unread_streams_do_not_stop_the_ingest_or_the_pages(bench):
    """Slowloris sockets and never-read live streams; another station's events still land, /fleet still answers."""
    host, port = bench.url.split("//")[1].split(":")
    slow = []
    for _ in range(50):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /fleet HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        slow.append(s)
    viewer = Client(bench.url)
    assert viewer.login("viewer") == 303
    cookie = f"loaxa_session={viewer.cookie('loaxa_session')}"
    streams = []
    for _ in range(100):
        s = socket.create_connection((host, int(port)))
        s.sendall(f"GET /bulletins/b1/live HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
        streams.append(s)  # never read
    try:
        t0 = time.monotonic()
        _publish(
            bench.broker,
            "loaxa/v1/sim/c002/s01/event",
            [{"seq": 1, "event": "started", "id": "good-2", "rev": 1, "at": _now(), "occurrence": "o"}],
        )
        other = Client(bench.url)
        assert other.login("admin") == 303
        deadline = time.monotonic() + 30
        while "c002" not in other.get("/fleet")[2]:
            assert time.monotonic() < deadline, "the ingest or /fleet stalled"
            time.sleep(0.2)
        print(f"\nwith 50 slowloris sockets and 100 unread streams: event to /fleet in {time.monotonic() - t0:.2f} s")
    finally:
        for s in slow + streams:
            s.close()


def test_a_megabyte_of_detail_from_a_station_is_cut_on_the_pages(bench):
    """The watch grid and the report show a station's detail cut short, not a megabyte per row."""
    _publish(bench.broker, "loaxa/v1/sim/c666/s01/event", [_receipt(2002, "failed", "y" * 1_000_000)])
    client = Client(bench.url)
    assert client.login("viewer") == 303
    wait_until_true = time.monotonic() + 30
    while "yyyy" not in client.get(f"/bulletins/{BULLETIN}")[2]:
        assert time.monotonic() < wait_until_true, "the megabyte receipt never arrived"
        time.sleep(0.2)
    for page, sent in ((f"/bulletins/{BULLETIN}", "yyyy"), ("/reports?scope=sim/c666/s01", "xxxx")):
        status, _, body = client.get(page)
        assert status == 200 and sent in body and len(body) < 100_000, (page, status, len(body))


def _open_stream(bench, cookie: str) -> tuple[socket.socket, str]:
    host, port = bench.url.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(f"GET /bulletins/{BULLETIN}/live HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, "the server closed the stream"
        head += chunk
    return s, head.decode("latin-1")


def test_one_user_cannot_open_hundreds_of_live_streams_but_others_still_can(bench):
    """Ten live streams per user; the eleventh is refused with 429 and a reason; another user is unaffected."""
    from loaxa.province.console.watch import STREAMS_PER_USER

    viewer = Client(bench.url)
    assert viewer.login("viewer") == 303
    cookie = f"loaxa_session={viewer.cookie('loaxa_session')}"
    opened = [_open_stream(bench, cookie) for _ in range(STREAMS_PER_USER)]
    try:
        assert all(" 200 " in head.split("\r\n")[0] for _, head in opened)
        status, headers, body = viewer.get(f"/bulletins/{BULLETIN}/live")
        assert status == 429 and headers.get("retry-after") == "30", (status, body[:300])
        assert "trang theo dõi trực tiếp" in body
        editor = Client(bench.url)
        assert editor.login("editor") == 303
        other, head = _open_stream(bench, f"loaxa_session={editor.cookie('loaxa_session')}")
        assert " 200 " in head.split("\r\n")[0]
        other.close()
    finally:
        for s, _ in opened:
            s.close()
    deadline = time.monotonic() + 10  # a closed stream is counted out when the server notices the client went
    while True:
        s, head = _open_stream(bench, cookie)
        s.close()
        if " 200 " in head.split("\r\n")[0]:
            break
        assert time.monotonic() < deadline, head
        time.sleep(0.3)


LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>'
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>'
)


@pytest.mark.parametrize(
    "xml", [LAUGHS, XXE, "<alert><unclosed>", "\x00\xff<" * 1000, '<alert xmlns="urn:x">' + "<a>" * 5000]
)
def test_a_hostile_cap_file_is_refused_with_a_reason_and_reads_no_file(bench, xml):
    """Entity bombs, external entities, broken and deep XML: a 4xx with a reason, never /etc/passwd, never a 500."""
    editor = Client(bench.url)
    assert editor.login("editor") == 303
    token = editor.csrf("/fleet")
    status, _, body = editor.post(
        "/console/cap-import", {"csrf": token, "xml": xml}, headers={"Accept": "application/json"}
    )
    assert 400 <= status < 500, (status, body[:300])
    assert json.loads(body)["error"] and "root:" not in body
    assert editor.get("/compose")[0] == 200


def test_session_cookie_flags_and_unicode_user_names(bench):
    """The session cookie is HttpOnly and SameSite=Lax; a user name of any script is shown as text."""
    name = "Nguyễn<b>x</b>"
    bench.cli("user", "add", name, "--role", "viewer", stdin="mật khẩu dài dài\n")
    client = Client(bench.url)
    token = client.csrf()
    status, headers, _ = client.post("/login", {"csrf": token, "name": name, "password": "mật khẩu dài dài"})
    assert status == 303
    cookie = next(line for line in headers["set-cookie"].split("\n") if line.startswith("loaxa_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/" in cookie
    body = client.get("/fleet")[2]
    assert "<b>x</b>" not in body


def test_a_station_reporting_objects_as_groups_does_not_break_the_compose_page(bench):
    """groups [text, 7, null, {…}] from one station: /compose still lists the real groups for every editor."""
    editor = Client(bench.url)
    assert editor.login("editor") == 303
    status, _, body = editor.get("/compose")
    assert status == 200, body[:300]
    assert "sim/group/" in body and "&lt;script&gt;" in body  # the station's text group, escaped


def test_every_page_answers_an_admin_without_a_server_error_after_the_hostile_station(bench):
    """Walks the route table's GET pages as admin, the hostile station's state and events in the database."""
    admin = Client(bench.url)
    assert admin.login("admin") == 303
    pages = [p for m, p in _routes(bench) if m == "GET" and not p.endswith("/live")]
    pages += [f"/bulletins/{BULLETIN}", "/reports?scope=sim/group/7", "/reports/download?scope=sim&format=xlsx"]
    assert len(pages) >= 20
    for path in pages:
        status, _, body = admin.get(path)
        assert status < 500, (path, status, body[:300])
