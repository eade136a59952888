"""The console on a real server, with its users and a browser, for the console's tests.

    with ConsoleBench(tmp_path, light=[("sim", "c000", "s00")]) as bench:
        with chromium() as driver:
            login(driver, bench.url, "editor")      # password: password("editor")
            driver.get(bench.url + "/compose")
            shoot(driver, "compose")                # docs/console/compose.png

The bench runs a Mosquitto on a free loopback port, `loaxa province serve`
in a child process (plain HTTP, `console.secure_cookies: false`), an issuer
key in its folder, and the users `admin`, `editor`, `approver` and `viewer`
made with the CLI (`loaxa province user add`, password on stdin). Stations:
`light=` paths answer from one asyncio loop in this process (`lightfleet`;
`light_options` such as `groups=("coastal",)` or `play_s` apply to each),
`real=` paths are full station daemons with an instant voice that require
the issuer's signature (`simfleet`; `groups` maps "P/C/S" to its groups).
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loaxa.testing.broker import Broker, start_mosquitto
from loaxa.testing.province import ServerProcess, province_config

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "docs" / "console"
USERS = ("admin", "editor", "approver", "viewer")
KID = "sim-province-console"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HEADLESS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)


def password(name: str) -> str:
    """The bench users' passwords (Vietnamese letters on purpose: the form must carry UTF-8)."""
    return "mật khẩu " + name


class ConsoleBench:
    """Broker, province server with the console, users, and optionally stations; a context manager."""

    def __init__(
        self,
        root: Path,
        *,
        light: list[tuple[str, str, str]] | None = None,
        real: list[tuple[str, str, str]] | None = None,
        groups: dict[str, tuple[str, ...]] | None = None,
        light_options: dict[str, Any] | None = None,
        province: str = "sim",
        users: tuple[str, ...] = USERS,
        **overrides: Any,
    ) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from loaxa.security import save_private_key

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.key = Ed25519PrivateKey.generate()
        self.key_file = save_private_key(self.root / "issuer.key", self.key, KID)
        self.broker: Broker = start_mosquitto(self.root)
        console = {"secure_cookies": False, **overrides.pop("console", {})}
        config = province_config(
            self.root,
            self.broker.port,
            province={"id": province},
            signing={"key_file": str(self.key_file)},
            console=console,
            **overrides,
        )
        self.server = ServerProcess(self.root / "server", config)
        self.data_dir = Path(config["data_dir"])  # province.db is here on SQLite
        self.light_fleet: Any = None
        self.real_fleet: Any = None
        try:
            self.server.start()
            self.url = self.server.wait_ready()
            for name in users:
                self.cli("user", "add", name, "--role", name, stdin=password(name) + "\n")
            if light:
                from loaxa.province.lightfleet import BackgroundFleet

                self.light_fleet = BackgroundFleet(light, self.broker.host, self.broker.port, **(light_options or {}))
            if real:
                self.real_fleet = self._real(real, groups or {})
        except BaseException:
            self.close()
            raise

    def _real(self, paths: list[tuple[str, str, str]], groups: dict[str, tuple[str, ...]]) -> Any:
        from loaxa.config import Issuer, SecuritySettings
        from loaxa.province.simfleet import SimFleet, sim_settings
        from loaxa.security import public_key_b64

        security = SecuritySettings(
            require_signature=True, issuers=(Issuer(kid=KID, public_key=public_key_b64(self.key)),)
        )
        fleet = SimFleet(
            [
                sim_settings(
                    self.root / "-".join(p),
                    self.broker.host,
                    self.broker.port,
                    p,
                    groups=groups.get("/".join(p), ()),
                    security=security,
                )
                for p in paths
            ]
        )
        fleet.start()
        return fleet

    def api(self, token: str, path: str, body: Any = None) -> Any:
        """The server's JSON API as an integration calls it: GET, or POST with `body`."""
        request = urllib.request.Request(
            f"{self.url}/api/v1{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method="POST" if body is not None else "GET",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """`loaxa province ARGS --config` of this server; its stdout (AssertionError when it fails)."""
        done = subprocess.run(
            [sys.executable, "-m", "loaxa", "province", *args, "--config", str(self.server.config_path)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"loaxa province {' '.join(args)}: {done.stderr}"
        return done.stdout

    def close(self) -> None:
        for fleet in (self.light_fleet, self.real_fleet):
            if fleet is not None:
                with contextlib.suppress(Exception):
                    fleet.close() if hasattr(fleet, "close") else fleet.stop()
        self.server.stop()
        self.broker.stop()

    def __enter__(self) -> ConsoleBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- plain HTTP, as a script or a forger would -----------------------------------------


class Client:
    """A cookie-keeping HTTP client for the console (no redirects followed: a test sees each 303)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request(
        self,
        method: str,
        path: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """(status, headers with lower-case names, body text)."""
        data = urllib.parse.urlencode(fields).encode() if fields is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self.opener.open(req, timeout=30) as answer:
                return answer.status, _headers(answer.headers), answer.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, _headers(exc.headers), exc.read().decode("utf-8", "replace")

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, **kw)

    def post(self, path: str, fields: dict[str, str], **kw: Any) -> tuple[int, dict[str, str], str]:
        return self.request("POST", path, fields, **kw)

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def csrf(self, path: str = "/login") -> str:
        """The CSRF token of the forms on `path` (the pre-login one on /login)."""
        _, _, body = self.get(path)
        marker = 'name="csrf" value="'
        start = body.index(marker) + len(marker)
        return body[start : body.index('"', start)]

    def login(self, name: str, secret: str | None = None, **headers: str) -> int:
        token = self.csrf("/login")
        status, _, _ = self.post(
            "/login", {"csrf": token, "name": name, "password": secret or password(name)}, headers=headers
        )
        return status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _headers(message: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in message.items():
        key = key.lower()
        out[key] = f"{out[key]}\n{value}" if key in out else value  # several Set-Cookie lines stay apart
    return out


# -- the browser --------------------------------------------------------------------


@contextlib.contextmanager
def chromium(*, lang: str | None = None) -> Iterator[Any]:
    """A headless Chromium driven by Selenium through Debian's chromedriver (never a downloaded one)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in HEADLESS:
        options.add_argument(flag)
    if lang:
        options.add_argument(f"--lang={lang}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def eventually(fetch: Any, ok: Any, timeout_s: float, what: str) -> Any:
    """`fetch()` again every 0.1 s until `ok` of it holds; its value then (an AssertionError naming `what` if never)."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if ok(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {value}")


def wait_until(driver: Any, condition: Any, timeout_s: float = 20.0) -> Any:
    """`condition(driver)` once truthy, with the page source in the failure.

    An element missing or replaced while a page loads or htmx swaps it counts as
    "not yet", not as a failure.
    """
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    def attempt(d: Any) -> Any:
        try:
            return condition(d)
        except WebDriverException as exc:
            # Chromium's other word for an element htmx replaced between finding it and reading it
            if "does not belong to the document" in (exc.msg or ""):
                return False
            raise

    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.1, ignored_exceptions=ignored).until(attempt)
    except TimeoutException:
        raise AssertionError(
            f"timed out after {timeout_s:g} s on {driver.current_url}:\n{driver.page_source[:3000]}"
        ) from None


def login(driver: Any, base_url: str, name: str, secret: str | None = None, next: str | None = None) -> None:
    """Log in through the form as a person would (then to `next`, else the bulletins); returns once that loaded."""
    from selenium.webdriver.common.by import By

    driver.get(base_url.rstrip("/") + "/login" + (f"?next={urllib.parse.quote(next)}" if next else ""))
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(secret or password(name))
    driver.find_element(By.CSS_SELECTOR, "section.login button[type=submit]").click()
    wait_until(driver, lambda d: "/login" not in d.current_url or d.find_elements(By.CSS_SELECTOR, ".login .error"))


def shoot(driver: Any, name: str) -> Path:
    """A 1280x900 screenshot for the docs: docs/console/NAME.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if (width, height) != (1280, 900):  # the window's size includes the browser's frame: size the page itself
        outer = driver.get_window_size()
        driver.set_window_size(outer["width"] + 1280 - width, outer["height"] + 900 - height)
        time.sleep(0.2)  # let the page lay itself out again before the picture
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
