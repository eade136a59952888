"""The console's logins, roles, CSRF and cookies: issue 15, "Accounts and roles".

A real province server with the console (a child process), a real Mosquitto,
users made with `loaxa province user add`, a real headless Chromium for what
a person does in a browser, and plain HTTP (urllib) for what a script or a
forger would send.
"""

from __future__ import annotations

import getpass
import gzip
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from loaxa.testing.console import Client, ConsoleBench, chromium, login, password, shoot, wait_until
from loaxa.testing.province import PostgresMissing, start_postgres


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    with ConsoleBench(tmp_path_factory.mktemp("console-auth")) as b:
        yield b


def audit_lines(bench: ConsoleBench, **query: str) -> str:
    admin = Client(bench.url)
    assert admin.login("admin") == 303
    q = "&".join(f"{k}={v}" for k, v in query.items())
    status, _, body = admin.get(f"/admin/audit.csv?{q}")
    assert status == 200
    return body


def test_log_in_and_out_in_the_browser_in_vietnamese_then_english(bench):
    """The nav names the user, the page is Vietnamese by default; the switch makes it English and is remembered."""
    with chromium() as driver:
        driver.get(bench.url + "/admin")
        wait_until(driver, lambda d: "/login" in d.current_url)  # not logged in: to the login form
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
        assert driver.find_element(By.CSS_SELECTOR, "section.login h1").text == "Đăng nhập"
        assert shoot(driver, "login").stat().st_size > 10_000  # docs/console/login.png
        driver.find_element(By.NAME, "name").send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(password("admin"))
        driver.find_element(By.CSS_SELECTOR, "section.login button[type=submit]").click()
        wait_until(driver, lambda d: d.current_url.endswith("/admin"))  # back where it was going
        assert driver.find_element(By.CSS_SELECTOR, "header .user-name").text == "admin"
        assert driver.find_element(By.CSS_SELECTOR, "header .role").text == "quản trị"
        nav = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "nav.main a")]
        assert nav == ["Bản tin", "Soạn tin", "Bản nháp", "Các trạm", "Báo cáo", "Quản trị"]
        assert driver.find_element(By.CSS_SELECTOR, "main h1").text == "Quản trị"

        driver.find_element(By.CSS_SELECTOR, "form.lang button[value=en]").click()
        wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "main h1").text == "Admin")
        assert driver.current_url.endswith("/admin")  # the switch stays on the page
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        assert "Log out" in driver.find_element(By.CSS_SELECTOR, "form.logout").text

        driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
        wait_until(driver, lambda d: "/login" in d.current_url)
        driver.get(bench.url + "/admin")
        wait_until(driver, lambda d: "/login" in d.current_url)  # the session is over
        assert driver.find_elements(By.CSS_SELECTOR, "header .user-name") == []

        login(driver, bench.url, "admin", next="/admin/users")
        assert driver.find_element(By.CSS_SELECTOR, "main h1").text == "Users"  # English was kept for this user
        driver.find_element(By.CSS_SELECTOR, "form.lang button[value=vi]").click()
        wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "main h1").text == "Người dùng")
        assert driver.get_log("browser") == []  # no script error and nothing refused by the CSP


def test_logout_deletes_the_session_so_its_cookie_no_longer_works(bench):
    client = Client(bench.url)
    assert client.login("viewer") == 303
    stolen = client.cookie("loaxa_session")
    assert stolen
    status, _, _ = client.post("/logout", {"csrf": client.csrf("/admin")})  # a 403 page carries the form too
    assert status == 303
    replay = Client(bench.url)
    status, headers, _ = replay.get("/admin", headers={"Cookie": f"loaxa_session={stolen}"})
    assert status == 303 and headers["location"].startswith("/login?next=/admin")


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(bench):
    with chromium() as driver:
        login(driver, bench.url, "editor", secret="not the password")
        assert "/login" in driver.current_url
        error = driver.find_element(By.CSS_SELECTOR, ".login .error").text
        assert error == "Sai tên đăng nhập hoặc mật khẩu."
        assert driver.find_element(By.NAME, "name").get_attribute("value") == "editor"  # kept, the password not
        assert driver.find_element(By.NAME, "password").get_attribute("value") == ""
    answers = []
    for i, name in enumerate(["approver", "nobody-by-this-name"]):
        client = Client(bench.url)
        token = client.csrf()
        status, _, body = client.post(
            "/login",
            {"csrf": token, "name": name, "password": "wrong wrong"},
            headers={"X-Forwarded-For": f"198.51.100.{10 + i}"},
        )
        answers.append((status, body.replace(token, "TOKEN").replace(name, "NAME")))
    assert answers[0] == answers[1] and answers[0][0] == 401


def test_an_unknown_name_costs_a_password_check_too(bench):
    """No user enumeration by timing: an unknown name is checked against a dummy argon2 hash (figures printed)."""

    def attempt(name: str, client_no: int) -> float:
        client = Client(bench.url)
        token = client.csrf()
        started = time.perf_counter()
        status, _, _ = client.post(
            "/login",
            {"csrf": token, "name": name, "password": "wrong wrong"},
            headers={"X-Forwarded-For": f"198.51.100.{100 + client_no}"},
        )
        assert status == 401
        return time.perf_counter() - started

    known = sorted(attempt("viewer", i) for i in range(3))[1]  # 3 failures: under the limit of 5
    unknown = sorted(attempt(f"ghost-{i}", 3 + i) for i in range(3))[1]
    print(f"login refused: known name {known * 1000:.1f} ms, unknown name {unknown * 1000:.1f} ms (medians of 3)")
    assert unknown > known / 3  # without the dummy hash an unknown name answers ~20 times faster


def test_logins_are_rate_limited_per_name_in_any_case_and_per_client(bench):
    bench.cli("user", "add", "lan", "--role", "viewer", stdin=password("lan") + "\n")
    limit = 5  # console.login_attempts_per_minute, the default
    # Per name: failures from five different addresses, the name typed in different cases.
    for i, typed in enumerate(["lan", "LAN", "Lan", "lAn", " lan"]):
        client = Client(bench.url)
        status, _, _ = client.post(
            "/login",
            {"csrf": client.csrf(), "name": typed, "password": "guess " + str(i)},
            headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
        )
        assert status == 401
    client = Client(bench.url)
    status, _, body = client.post(
        "/login",
        {"csrf": client.csrf(), "name": "LaN", "password": password("lan")},  # even the right password
        headers={"X-Forwarded-For": "203.0.113.50"},
    )
    assert status == 429 and "Đăng nhập sai quá nhiều lần" in body
    assert client.cookie("loaxa_session") is None
    # Per client: one address trying several names.
    for i in range(limit):
        client = Client(bench.url)
        status, _, _ = client.post(
            "/login",
            {"csrf": client.csrf(), "name": f"someone-{i}", "password": "guess"},
            headers={"X-Forwarded-For": "203.0.113.99"},
        )
        assert status == 401
    client = Client(bench.url)
    status, _, _ = client.post(
        "/login",
        {"csrf": client.csrf(), "name": "viewer", "password": password("viewer")},
        headers={"X-Forwarded-For": "203.0.113.99"},
    )
    assert status == 429
    # Another address is not held back by either.
    assert Client(bench.url).login("viewer", **{"X-Forwarded-For": "203.0.113.200"}) == 303
    assert "rate limited" in audit_lines(bench)


def test_a_viewer_gets_403_on_the_admin_pages_and_cannot_post_to_them(bench):
    with chromium() as driver:
        login(driver, bench.url, "viewer", next="/admin/users")
        assert driver.find_element(By.CSS_SELECTOR, "main h1").text == "403"
        assert "Vai trò của bạn không được phép mở trang này." in driver.find_element(By.TAG_NAME, "main").text
        nav = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "nav.main a")]
        assert "Quản trị" not in nav and "Soạn tin" not in nav
    viewer = Client(bench.url)
    assert viewer.login("viewer") == 303
    status, _, _ = viewer.get("/admin/users")
    assert status == 403
    token = viewer.csrf("/admin/users")  # a valid token of the viewer's own session
    status, _, _ = viewer.post(
        "/admin/users", {"csrf": token, "action": "add", "name": "intruder", "role": "admin", "password": "x" * 12}
    )
    assert status == 403
    assert "intruder" not in bench.cli("user", "list")
    assert ",viewer,,POST,/admin/users,403," in audit_lines(bench, user="viewer")


def test_a_post_without_the_csrf_token_is_refused_even_with_a_valid_session(bench):
    admin = Client(bench.url)
    assert admin.login("admin") == 303
    form = {"action": "add", "name": "forged", "role": "admin", "password": "forged password"}
    assert admin.post("/admin/users", form)[0] == 403
    assert admin.post("/admin/users", {**form, "csrf": "not-the-token"})[0] == 403
    assert admin.post("/admin/users", form, headers={"X-CSRF-Token": admin.csrf("/admin/users")[:-1]})[0] == 403
    # The pre-login token (its own cookie) is no token for a session.
    pre = Client(bench.url).csrf()
    assert admin.post("/admin/users", {**form, "csrf": pre})[0] == 403
    assert "forged" not in bench.cli("user", "list")
    assert admin.post("/admin/users", form, headers={"X-CSRF-Token": admin.csrf("/admin/users")})[0] == 200
    assert "forged\tadmin\tactive" in bench.cli("user", "list")  # with the header (as htmx sends it) it goes through
    lines = audit_lines(bench, user="admin")
    assert lines.count("POST,/admin/users,403,127.0.0.1,missing or wrong CSRF token") == 4
    # A forged login (no pre-login token) is refused too.
    stranger = Client(bench.url)
    status, _, _ = stranger.post("/login", {"name": "admin", "password": password("admin")})
    assert status == 403 and stranger.cookie("loaxa_session") is None


def test_cookies_are_httponly_and_samesite_and_pages_carry_the_security_headers(bench):
    client = Client(bench.url)
    status, headers, _ = client.get("/login")
    assert "HttpOnly" in headers["set-cookie"] and "samesite=lax" in headers["set-cookie"].lower()
    token = client.csrf()
    status, headers, _ = client.post("/login", {"csrf": token, "name": "editor", "password": password("editor")})
    cookie = next(c for c in headers["set-cookie"].split("\n") if c.startswith("loaxa_session="))
    assert status == 303 and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # console.secure_cookies: false on this plain-HTTP bench
    assert "Max-Age=43200" in cookie  # console.session_hours: 12
    status, headers, body = client.get("/admin")  # a page (the 403 one)
    csp = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert csp["default-src"] == csp["script-src"] == csp["style-src-elem"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and "unsafe-eval" not in str(csp)
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "same-origin"
    assert "<script>" not in body and " on" + "click=" not in body  # no inline script for the CSP to refuse


def test_recordings_on_a_separate_media_host_may_play_in_the_page_and_nothing_else_may():
    from loaxa.province.console import headers

    def media_src(media_url: str | None) -> str:
        csp = dict(headers(media_url))[b"content-security-policy"].decode()
        return next(part.strip() for part in csp.split(";") if part.strip().startswith("media-src"))

    assert media_src(None) == "media-src 'self' blob:"
    assert (
        media_src("https://media.so-tttt.example.vn/media") == "media-src 'self' blob: https://media.so-tttt.example.vn"
    )
    assert media_src("javascript:alert(1)") == "media-src 'self' blob:"  # not an origin: nothing added


def test_pages_are_gzipped_and_static_files_cached(bench):
    client = Client(bench.url)
    status, headers, _ = client.get("/login", headers={"Accept-Encoding": "gzip"})
    assert headers.get("content-encoding") == "gzip"
    request = urllib.request.Request(bench.url + "/login", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        raw = answer.read()
    page = gzip.decompress(raw).decode("utf-8")
    print(f"login page: {len(page)} bytes, {len(raw)} gzipped")
    assert "Đăng nhập" in page and len(raw) < len(page)
    link = page.split('rel="stylesheet" href="')[1].split('"')[0]
    assert "?v=" in link
    status, headers, _ = client.get(link, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and "immutable" in headers["cache-control"] and headers["content-encoding"] == "gzip"
    status, headers, _ = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert status == 200 and "max-age=31536000" in headers["cache-control"]
    # What a first visit downloads (the page and everything it links), as sent over the wire.
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
    assert len(assets) == 5  # favicon, console.css, htmx, its SSE extension, console.js
    wire = len(raw)
    for asset in assets:
        with urllib.request.urlopen(
            urllib.request.Request(bench.url + asset, headers={"Accept-Encoding": "gzip"}), timeout=10
        ) as answer:
            wire += len(answer.read())
    print(f"first visit of the login page: {wire / 1024:.1f} KiB over the wire with its {len(assets)} static files")
    assert wire < 100 * 1024  # a sanity bound; later visits fetch only the page


def test_a_disabled_users_session_ends_and_they_cannot_log_in_again(bench):
    bench.cli("user", "add", "thu", "--role", "editor", stdin=password("thu") + "\n")
    thu = Client(bench.url)
    assert thu.login("thu") == 303
    assert thu.get("/admin")[0] == 403  # logged in (an editor on an admin page)
    admin = Client(bench.url)
    assert admin.login("admin") == 303
    status, _, body = admin.post(
        "/admin/users", {"csrf": admin.csrf("/admin/users"), "action": "disable", "name": "thu"}
    )
    assert status == 200 and "Đã khóa tài khoản thu" in body
    status, headers, _ = thu.get("/admin")
    assert status == 303 and headers["location"].startswith("/login")
    assert thu.login("thu") == 401  # the same answer as a wrong password
    assert "thu\teditor\tdisabled" in bench.cli("user", "list")


def test_the_login_goes_back_only_to_pages_of_this_server(bench):
    for given, landed in [
        ("/admin/audit", "/admin/audit"),
        ("//evil.example/x", "/bulletins"),
        ("https://e.x", "/bulletins"),
    ]:
        client = Client(bench.url)
        token = client.csrf()
        status, headers, _ = client.post(
            "/login", {"csrf": token, "name": "admin", "password": password("admin"), "next": given}
        )
        assert (status, headers["location"]) == (303, landed)


def test_user_add_from_the_cli_reads_the_password_from_stdin(bench):
    out = bench.cli("user", "add", "Hoa", "--admin", stdin="mật khẩu của hoa\n")
    assert "hoa" in out
    assert "hoa\tadmin\tactive" in bench.cli("user", "list")
    assert Client(bench.url).login("hoa", "mật khẩu của hoa") == 303
    bench.cli("user", "passwd", "hoa", "--password-stdin", stdin="mật khẩu mới của hoa\n")
    assert Client(bench.url).login("hoa", "mật khẩu của hoa", **{"X-Forwarded-For": "192.0.2.7"}) == 401
    assert Client(bench.url).login("HOA", "mật khẩu mới của hoa") == 303
    refused = subprocess.run(
        [sys.executable, "-m", "loaxa", "--lang", "vi", "province", "user", "add", "ngan"]
        + ["--config", str(bench.server.config_path)],
        input="ngắn\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "mật khẩu cần ít nhất 8 ký tự" in refused.stderr
    again = subprocess.run(
        [sys.executable, "-m", "loaxa", "province", "user", "add", "hoa", "--config", str(bench.server.config_path)],
        input="another password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode != 0 and "exists already" in again.stderr
    # Changes made at the server's terminal are in the audit log, named by the system account.
    lines = audit_lines(bench, user=f"cli:{getpass.getuser()}")
    assert ",CLI,province user add hoa,200,local,admin" in lines and ",CLI,province user passwd hoa,200," in lines


def test_secure_cookies_behind_a_tls_proxy_and_sessions_expire(tmp_path):
    """console.secure_cookies unset: Secure when X-Forwarded-Proto says https; a session ends after session_hours."""
    hours = 0.002  # 7.2 s
    with ConsoleBench(tmp_path, users=("admin",), console={"secure_cookies": None, "session_hours": hours}) as bench:
        plain = Client(bench.url)
        token = plain.csrf()
        status, headers, _ = plain.post("/login", {"csrf": token, "name": "admin", "password": password("admin")})
        logged_in = time.monotonic()
        assert status == 303 and "Secure" not in headers["set-cookie"]
        session = {"Cookie": f"loaxa_session={plain.cookie('loaxa_session')}"}  # sent after its Max-Age too
        proxied = Client(bench.url)
        https = {"X-Forwarded-Proto": "https"}
        status, headers, _ = proxied.get("/login", headers=https)
        assert "Secure" in headers["set-cookie"]
        token = headers["set-cookie"].split("loaxa_csrf=")[1].split(";")[0]
        status, headers, _ = proxied.post(
            "/login",
            {"csrf": token, "name": "admin", "password": password("admin")},
            headers={**https, "Cookie": f"loaxa_csrf={token}"},
        )
        cookie = next(c for c in headers["set-cookie"].split("\n") if c.startswith("loaxa_session="))
        assert status == 303 and "Secure" in cookie and "HttpOnly" in cookie
        assert Client(bench.url).get("/admin", headers=session)[0] == 200
        time.sleep(max(0.0, logged_in + hours * 3600 + 0.5 - time.monotonic()))
        status, headers, _ = Client(bench.url).get("/admin", headers=session)
        assert status == 303 and headers["location"].startswith("/login")  # the server ended it, not the browser


def test_the_console_runs_on_postgresql(tmp_path):
    """The same migration on PostgreSQL: users, sessions, login failures and the audit log's user column."""
    try:
        pg = start_postgres(tmp_path)
    except PostgresMissing as exc:
        pytest.fail(str(exc))
    try:
        with ConsoleBench(tmp_path / "b", users=("admin", "viewer"), database={"url": pg.url}) as bench:
            admin = Client(bench.url)
            assert admin.login("admin") == 303
            status, _, body = admin.post(
                "/admin/users",
                {
                    "csrf": admin.csrf("/admin/users"),
                    "action": "add",
                    "name": "mai",
                    "role": "approver",
                    "password": "mật khẩu mai",
                },
            )
            assert status == 200 and 'id="user-mai"' in body
            assert Client(bench.url).login("mai", "wrong password") == 401
            assert Client(bench.url).login("mai", "mật khẩu mai") == 303
            assert ",admin,,POST,/admin/users,200," in audit_lines(bench, user="admin")
    finally:
        pg.stop()


def test_an_event_stream_is_not_held_back_by_the_compression(tmp_path):
    """The console's gzip leaves text/event-stream alone: the first event arrives while the stream stays open."""
    import asyncio

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from loaxa.province.console import Compressed
    from loaxa.testing.broker import free_port

    release = threading.Event()

    async def events(request):
        async def stream():
            yield b"data: first\n\n"
            while not release.is_set():
                await asyncio.sleep(0.05)
            yield b"data: last\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/live", events)])
    app.add_middleware(Compressed)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/live", headers={"Accept": "text/event-stream", "Accept-Encoding": "gzip"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.headers.get("Content-Encoding") is None
            assert answer.readline() == b"data: first\n"  # before the stream ends
            release.set()
            assert b"data: last" in answer.read()
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)


def test_an_unknown_address_gets_a_console_page_and_the_api_keeps_json(bench):
    client = Client(bench.url)
    status, headers, body = client.get("/no/such/page")
    assert status == 404 and "Không có trang này." in body and headers["content-type"].startswith("text/html")
    assert client.login("viewer") == 303
    status, _, body = client.get("/no/such/page")
    assert status == 404 and 'class="user-name">viewer<' in body  # with the nav of the logged-in user
    status, headers, body = client.get("/api/v1/no/such/thing")
    assert status == 404 and headers["content-type"] == "application/json" and "not found" in body


def test_english_chosen_on_the_login_page_stays_after_the_login(bench):
    client = Client(bench.url)
    token = client.csrf()
    status, headers, _ = client.post("/lang", {"csrf": token, "lang": "en", "next": "/login"})
    assert (status, headers["location"]) == (303, "/login")
    _, _, page = client.get("/login")
    assert "<h1>Log in</h1>" in page
    assert client.post("/lang", {"lang": "vi", "next": "/login"})[0] == 403  # no token, no change
    assert client.login("approver") == 303
    _, _, page = client.get("/admin")
    assert "Your role does not allow this page." in page and 'lang="en"' in page


def test_a_hash_made_with_older_argon2_parameters_is_renewed_at_the_next_login(bench):
    import sqlite3

    from argon2 import PasswordHasher

    bench.cli("user", "add", "cu", "--role", "viewer", stdin=password("cu") + "\n")
    database = bench.data_dir / "province.db"
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(password("cu"))
    with sqlite3.connect(database) as db:
        db.execute("UPDATE users SET password_hash = ? WHERE name = 'cu'", (old,))
    assert Client(bench.url).login("cu") == 303  # the old hash still lets the user in
    with sqlite3.connect(database) as db:
        (renewed,) = db.execute("SELECT password_hash FROM users WHERE name = 'cu'").fetchone()
    assert renewed != old and not PasswordHasher().check_needs_rehash(renewed)
    assert renewed.startswith("$argon2id$") and password("cu") not in renewed
    assert Client(bench.url).login("cu") == 303


def test_htmx_and_json_requests_get_401_not_a_login_page(bench):
    """A part of a page asking after the session ended: 401, and htmx is told to load the login page."""
    client = Client(bench.url)
    status, headers, body = client.post(
        "/admin/users",
        {"action": "add"},
        headers={"HX-Request": "true", "HX-Current-URL": bench.url + "/admin/audit?user=lan"},
    )
    assert status == 401 and body == "Phiên làm việc đã kết thúc: vui lòng đăng nhập lại."
    assert headers["hx-redirect"] == "/login?next=/admin/audit%3Fuser%3Dlan"
    status, headers, body = client.get("/admin/users", headers={"Accept": "application/json"})
    assert status == 401 and json.loads(body) == {"error": "Phiên làm việc đã kết thúc: vui lòng đăng nhập lại."}
    assert client.login("viewer") == 303
    status, _, body = client.get("/admin/users", headers={"Accept": "application/json"})
    assert status == 403 and "Vai trò của bạn" in json.loads(body)["error"]


def test_a_page_gets_repeated_fields_as_lists_and_files_as_bytes(tmp_path):
    """Console.page hands a handler the form as the design says: one value, a list for a repeated field,
    a file as {name, content_type, data}; a JSON body as its object. Served in-process on a real socket."""
    import uvicorn
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from loaxa.province.console import accounts
    from loaxa.province.server.api import Context, build_app
    from loaxa.province.server.database import Database
    from loaxa.province.server.settings import parse_settings
    from loaxa.testing.broker import free_port

    settings = parse_settings(
        {"province": {"id": "sim"}, "data_dir": str(tmp_path), "console": {"secure_cookies": False}}
    )
    db = Database.open(settings)
    accounts.add_user(db, "editor", "editor", password("editor"))

    def not_sent(*args, **kwargs):
        raise AssertionError("nothing is published here")

    app = build_app(Context(settings=settings, db=db, publish=not_sent, status=dict))
    console = app.state.console

    def echo(request, user, form):
        shown = {
            k: (v if not isinstance(v, dict) or "data" not in v else {**v, "data": v["data"].hex()})
            for k, v in form.items()
        }
        return JSONResponse({"user": user.name, "form": shown})

    app.router.routes.append(Route("/echo", console.page("editor")(echo), methods=["POST"]))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        client = Client(f"http://127.0.0.1:{port}")
        assert client.login("editor") == 303
        token = client.csrf("/no-such-page")  # any page carries the session's token
        boundary = "b0undary"
        parts = [("csrf", None, token), ("targets", None, "sim/c000"), ("targets", None, "sim/group/ven-bien")]
        parts += [("file", "bản tin.wav", b"RIFF\x00\x01")]
        body = b""
        for name, filename, value in parts:
            disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
            head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            head += "Content-Type: audio/wav\r\n" if filename else ""
            body += head.encode() + b"\r\n" + (value if isinstance(value, bytes) else value.encode()) + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/echo",
            data=body,
            method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with client.opener.open(request, timeout=10) as answer:
            echoed = json.loads(answer.read())
        assert echoed["user"] == "editor"
        assert echoed["form"]["targets"] == ["sim/c000", "sim/group/ven-bien"]
        assert echoed["form"]["file"] == {"name": "bản tin.wav", "content_type": "audio/wav", "data": "524946460001"}
        json_request = urllib.request.Request(
            f"http://127.0.0.1:{port}/echo",
            data=json.dumps({"text": "Xin chào", "targets": ["sim"]}).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "X-CSRF-Token": token},
        )
        with client.opener.open(json_request, timeout=10) as answer:
            assert json.loads(answer.read())["form"] == {"text": "Xin chào", "targets": ["sim"]}
    finally:
        server.should_exit = True
        thread.join(10)
        db.close()


def _at_a_terminal(args: list[str], answers: list[str], timeout_s: float = 120.0) -> tuple[int, str]:
    """Run `loaxa ARGS` with a pseudo-terminal as its controlling terminal, typing each answer at a prompt."""
    import os
    import pty
    import select
    import signal

    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and /dev/tty are the terminal
        os.execv(sys.executable, [sys.executable, "-m", "loaxa", *args])
    seen, pending, answered_at = b"", list(answers), 0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child closed the terminal: it has exited
                    break
                if not chunk:
                    break
                seen += chunk
                # A new prompt since the last answer waits for the next one (getpass turns the echo off and
                # discards what was typed before it asks, so an answer must never come early).
                if pending and seen[answered_at:].strip().endswith(b":"):
                    os.write(fd, pending.pop(0).encode("utf-8") + b"\n")
                    answered_at = len(seen)
        done, status = os.waitpid(pid, os.WNOHANG)
        while done == 0 and time.monotonic() < deadline:  # it closed the terminal and is exiting
            time.sleep(0.05)
            done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:  # still waiting for an answer after the deadline: stop it and say what it showed
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"loaxa {' '.join(args)} did not finish in {timeout_s:g} s; it showed: {seen!r}")
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode("utf-8", "replace")


def test_user_add_at_a_terminal_asks_twice_and_refuses_two_different_answers(bench):
    config = ["--config", str(bench.server.config_path)]
    code, shown = _at_a_terminal(
        ["--lang", "vi", "province", "user", "add", "tam", "--role", "approver", *config],
        ["mật khẩu của tâm", "mật khẩu của tâm"],
    )
    assert code == 0, shown
    assert "Mật khẩu cho tam:" in shown and "Nhập lại mật khẩu:" in shown
    assert "mật khẩu của tâm" not in shown  # not echoed
    assert Client(bench.url).login("tam", "mật khẩu của tâm") == 303
    code, shown = _at_a_terminal(["province", "user", "passwd", "tam", *config], ["một mật khẩu", "mật khẩu khác"])
    assert code == 1 and "the two passwords differ; nothing was changed" in shown
    assert Client(bench.url).login("tam", "mật khẩu của tâm") == 303
