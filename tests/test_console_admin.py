"""The admin's pages: users, API tokens, the issuer key, the audit log: issue 15, "Accounts and roles".

An admin works in a real Chromium against a real server; what the pages
did is then checked from outside: the CLI's user list, logins over HTTP,
the API answering (or refusing) a token, the audit log's CSV export.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from loaxa.security import public_key_b64
from loaxa.testing.console import KID, Client, ConsoleBench, chromium, login, password, shoot, wait_until


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    with ConsoleBench(tmp_path_factory.mktemp("console-admin")) as b:
        yield b


@pytest.fixture
def admin_browser(bench):
    with chromium() as driver:
        login(driver, bench.url, "admin", next="/admin")
        yield driver


def api(bench: ConsoleBench, token: str, path: str = "/api/v1/stations") -> int:
    request = urllib.request.Request(bench.url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            json.loads(answer.read())
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def row(driver, prefix: str, name: str):
    return driver.find_element(By.ID, f"{prefix}-{name}")


def submit_in(element, button_text: str) -> None:
    next(b for b in element.find_elements(By.TAG_NAME, "button") if b.text == button_text).click()


def test_admin_adds_a_user_changes_the_role_resets_the_password_and_disables_it(bench, admin_browser):
    d = admin_browser
    d.find_element(By.LINK_TEXT, "Người dùng").click()
    wait_until(d, lambda d: d.find_element(By.CSS_SELECTOR, "main h1").text == "Người dùng")
    form = d.find_element(By.CSS_SELECTOR, "form.add-user")
    form.find_element(By.NAME, "name").send_keys("Nguyen.Van.Binh")
    Select(form.find_element(By.NAME, "role")).select_by_value("editor")
    form.find_element(By.NAME, "password").send_keys("mật khẩu của bình")
    submit_in(form, "Thêm")
    wait_until(d, lambda d: d.find_elements(By.ID, "user-nguyen.van.binh"))
    assert d.find_element(By.CSS_SELECTOR, "p.done").text == "Đã thêm người dùng nguyen.van.binh."
    assert row(d, "user", "nguyen.van.binh").find_element(By.CSS_SELECTOR, "td.role").text == "biên tập viên"
    assert "nguyen.van.binh\teditor\tactive" in bench.cli("user", "list")
    assert Client(bench.url).login("nguyen.van.binh", "mật khẩu của bình") == 303

    Select(row(d, "user", "nguyen.van.binh").find_element(By.NAME, "role")).select_by_value("approver")
    submit_in(row(d, "user", "nguyen.van.binh"), "Đổi vai trò")
    wait_until(d, lambda d: d.find_element(By.CSS_SELECTOR, "p.done").text == "Đã đổi vai trò của nguyen.van.binh.")
    assert row(d, "user", "nguyen.van.binh").find_element(By.CSS_SELECTOR, "td.role").text == "người duyệt"

    row(d, "user", "nguyen.van.binh").find_element(By.NAME, "password").send_keys("mật khẩu mới của bình")
    submit_in(row(d, "user", "nguyen.van.binh"), "Đặt lại mật khẩu")
    wait_until(d, lambda d: "Đã đặt lại mật khẩu" in d.find_element(By.CSS_SELECTOR, "p.done").text)
    assert Client(bench.url).login("nguyen.van.binh", "mật khẩu mới của bình") == 303
    shoot(d, "admin-users")

    binh = Client(bench.url)
    assert binh.login("nguyen.van.binh", "mật khẩu mới của bình") == 303
    submit_in(row(d, "user", "nguyen.van.binh"), "Khóa tài khoản")
    wait_until(d, lambda d: "Đã khóa tài khoản" in d.find_element(By.CSS_SELECTOR, "p.done").text)
    assert "disabled" in row(d, "user", "nguyen.van.binh").get_attribute("class")
    assert binh.get("/admin")[0] == 303  # the open session ended
    assert "nguyen.van.binh\tapprover\tdisabled" in bench.cli("user", "list")


def test_a_refused_change_says_why_and_changes_nothing(bench, admin_browser):
    d = admin_browser
    d.get(bench.url + "/admin/users")
    form = d.find_element(By.CSS_SELECTOR, "form.add-user")
    form.find_element(By.NAME, "name").send_keys("viewer")  # exists already
    form.find_element(By.NAME, "password").send_keys("mật khẩu khác")
    submit_in(form, "Thêm")
    wait_until(d, lambda d: d.find_element(By.CSS_SELECTOR, "p.error").text == "đã có người dùng tên viewer")
    assert Client(bench.url).login("viewer") == 303  # the old password still works
    # An admin cannot lock themselves out; their own row has no Disable button either.
    assert not [b for b in row(d, "user", "admin").find_elements(By.TAG_NAME, "button") if b.text == "Khóa tài khoản"]
    Select(row(d, "user", "admin").find_element(By.NAME, "role")).select_by_value("viewer")
    submit_in(row(d, "user", "admin"), "Đổi vai trò")
    # The page still shows the first refusal until the answer replaces it: wait for the new words.
    wait_until(d, lambda d: "tự bỏ quyền quản trị" in d.find_element(By.CSS_SELECTOR, "p.error").text)
    assert "admin\tadmin\tactive" in bench.cli("user", "list")


def test_api_tokens_are_shown_once_work_and_can_be_revoked(bench, admin_browser):
    d = admin_browser
    d.get(bench.url + "/admin/tokens")
    form = d.find_element(By.CSS_SELECTOR, "form.add-token")
    form.find_element(By.NAME, "name").send_keys("so-tt-tt")
    Select(form.find_element(By.NAME, "scope")).select_by_value("send")
    submit_in(form, "Thêm")
    shown = wait_until(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".new-token code"))[0].text
    assert shown.startswith("lxp_")
    assert row(d, "token", "so-tt-tt").find_elements(By.TAG_NAME, "td")[1].text == "read,send"
    assert api(bench, shown) == 200
    d.get(bench.url + "/admin/tokens")
    assert shown not in d.page_source  # shown once
    submit_in(row(d, "token", "so-tt-tt"), "Thu hồi")
    wait_until(d, lambda d: "Đã thu hồi mã truy cập so-tt-tt." in d.page_source)
    assert "đã thu hồi" in row(d, "token", "so-tt-tt").text
    assert api(bench, shown) == 401
    assert "so-tt-tt\tread,send\trevoked" in bench.cli("token", "list")


def test_the_key_page_shows_the_issuer_kid_and_public_key(bench, admin_browser):
    d = admin_browser
    d.find_element(By.LINK_TEXT, "Khóa ký bản tin").click()
    wait_until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "dd.kid"))
    assert d.find_element(By.CSS_SELECTOR, "dd.kid").text == KID
    assert d.find_element(By.CSS_SELECTOR, "dd.public").text == public_key_b64(bench.key)
    assert str(bench.key_file) in d.find_element(By.TAG_NAME, "main").text  # where the key lives
    secret = next(line.split(": ", 1)[1] for line in bench.key_file.read_text().splitlines() if "private_key" in line)
    assert secret not in d.page_source  # the private key never leaves its file


def test_the_audit_log_shows_console_and_api_actions_newest_first_and_exports_csv(bench, admin_browser):
    token = bench.cli("token", "add", "bao-cao", "--scope", "read").strip()
    assert api(bench, token) == 200
    assert api(bench, token, "/api/v1/bulletins/none") == 404
    editor = Client(bench.url)
    assert editor.login("editor") == 303
    assert editor.post("/admin/users", {"csrf": editor.csrf("/admin"), "action": "add", "name": "x"})[0] == 403

    d = admin_browser
    d.get(bench.url + "/admin/audit")
    lines = [r.text for r in d.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")]
    assert any("bao-cao" in x and "GET /api/v1/stations" in x and "200" in x for x in lines)
    assert any("editor" in x and "POST /admin/users" in x and "403" in x for x in lines)
    assert any("POST /login" in x and "logged in" in x for x in lines)
    editor_at = next(i for i, x in enumerate(lines) if "POST /admin/users" in x and "editor" in x)
    api_at = next(i for i, x in enumerate(lines) if "bao-cao" in x)
    assert editor_at < api_at  # newest first

    d.find_element(By.NAME, "user").send_keys("editor")
    d.find_element(By.CSS_SELECTOR, "form.filter button").click()
    wait_until(d, lambda d: "user=editor" in d.current_url)
    users = {td.text for td in d.find_elements(By.CSS_SELECTOR, "table.audit td.user")}
    assert users == {"editor"}
    href = d.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href")
    assert href.endswith("/admin/audit.csv?user=editor&token=")

    admin = Client(bench.url)
    assert admin.login("admin") == 303
    status, headers, body = admin.get("/admin/audit.csv?token=bao-cao")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert "attachment" in headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert [(r["method"], r["path"], r["status"]) for r in rows] == [
        ("GET", "/api/v1/bulletins/none", "404"),
        ("GET", "/api/v1/stations", "200"),
    ]
    assert {r["token"] for r in rows} == {"bao-cao"}
    everything = list(csv.DictReader(io.StringIO(admin.get("/admin/audit.csv")[2].lstrip("\ufeff"))))
    assert any(r["user"] == "admin" and r["path"] == "/login" and r["detail"] == "logged in" for r in everything)
    assert any(r["user"] == "editor" and r["detail"] == "needs admin" for r in everything)


def test_a_viewer_and_an_editor_have_no_admin_pages(bench):
    for name in ("viewer", "editor", "approver"):
        client = Client(bench.url)
        assert client.login(name) == 303
        for path in ("/admin", "/admin/users", "/admin/tokens", "/admin/key", "/admin/audit", "/admin/audit.csv"):
            assert client.get(path)[0] == 403, (name, path)
    with chromium() as d:
        login(d, bench.url, "approver", next="/admin/audit.csv")
        assert d.find_element(By.CSS_SELECTOR, "main h1").text == "403"
        assert password("approver") not in d.page_source


def test_what_a_user_typed_is_shown_as_text_never_as_markup(bench):
    admin = Client(bench.url)
    assert admin.login("admin") == 303
    name = '<img src=x onerror="alert(1)">'.replace(" ", "")  # names have no spaces
    status, _, body = admin.post(
        "/admin/users",
        {"csrf": admin.csrf("/admin/users"), "action": "add", "name": name, "role": "viewer", "password": "p" * 10},
    )
    assert status == 200
    assert "<img" not in body and "&lt;imgsrc=x" in body
    status, _, body = admin.get("/admin/audit?user=" + urllib.parse.quote("<script>"))
    assert status == 200 and "<script>" not in body.split("</head>")[1] and "&lt;script&gt;" in body
