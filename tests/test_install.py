"""Installing a station: the unit systemd accepts, install-service.sh, setup.sh's roles (issue 12)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd/loaxa.service"


def sections(text: str) -> dict[str, dict[str, str]]:
    """A unit file as {section: {key: last value}}."""
    found: dict[str, dict[str, str]] = {}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            found[current] = {}
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found[current][key] = value
    return found


def image(tmp_path: Path, *, gpio: bool) -> Path:
    """A file-system root with this machine's users and groups (and a gpio group, if asked)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        if Path("/etc", name).exists():
            shutil.copy(Path("/etc", name), root / "etc" / name)
    if gpio:
        with (root / "etc/group").open("a") as f:
            f.write("gpio:x:997:\n")
    return root


def install(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts/install-service.sh"), "--root", str(root)], capture_output=True, text=True, timeout=60
    )


def members(root: Path, group: str) -> list[str]:
    for line in (root / "etc/group").read_text().splitlines():
        name, _, _, users = line.split(":")
        if name == group:
            return users.split(",") if users else []
    return []


def test_the_start_limit_is_where_systemd_reads_it_and_no_group_a_stock_debian_lacks_is_required() -> None:
    unit = sections(UNIT.read_text())
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"  # in [Service] systemd ignores it
    assert "StartLimitIntervalSec" not in unit["Service"]
    assert unit["Service"]["SupplementaryGroups"].split() == ["audio"]  # no `gpio`: it stopped the unit
    assert unit["Service"]["UMask"] == "0027"


@pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd (passwd package)")
@pytest.mark.parametrize("gpio", [False, True], ids=["no gpio group", "gpio group"])
def test_install_service_makes_the_user_config_store_and_unit(tmp_path: Path, gpio: bool) -> None:
    root = image(tmp_path, gpio=gpio)
    done = install(root)
    assert done.returncode == 0, done.stderr
    assert "loaxa" in members(root, "audio")
    assert ("loaxa" in members(root, "gpio")) is gpio
    config = root / "etc/loaxa/loaxa.yaml"
    assert config.read_text() == (ROOT / "config/loaxa.example.yaml").read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    store = root / "var/lib/loaxa"
    assert stat.S_IMODE(store.stat().st_mode) == 0o750
    uid = next(
        line.split(":")[2] for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("loaxa:")
    )
    assert store.stat().st_uid == int(uid)
    unit = sections((root / "etc/systemd/system/loaxa.service").read_text())
    assert unit["Service"]["ExecStart"] == f"{ROOT}/.venv/bin/loaxa run"


@pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd (passwd package)")
def test_install_service_twice_keeps_the_station_s_config(tmp_path: Path) -> None:
    root = image(tmp_path, gpio=False)
    assert install(root).returncode == 0
    config = root / "etc/loaxa/loaxa.yaml"
    config.write_text("station: {province: hn, commune: ba-vi, id: loa-1}\n")
    again = install(root)
    assert again.returncode == 0, again.stderr
    assert config.read_text().startswith("station: {province: hn")
    users = [line.split(":")[0] for line in (root / "etc/passwd").read_text().splitlines()]
    assert users.count("loaxa") == 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd (passwd package)")
def test_systemd_accepts_the_installed_unit(tmp_path: Path) -> None:
    root = image(tmp_path, gpio=False)
    assert install(root).returncode == 0
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(root / "etc/systemd/system/loaxa.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stderr
    assert "Unknown key" not in verified.stderr, verified.stderr


def test_a_station_setup_installs_the_runtime_only_and_ci_keeps_its_test_tools() -> None:
    def plan(*args: str) -> str:
        done = subprocess.run(
            [str(ROOT / "scripts/setup.sh"), *args, "--dry-run"], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    station = plan("--station")
    assert "pip install -e .\n" in station and "mosquitto" not in station and "chromium" not in station
    ci = plan()
    assert "chromium chromium-driver" in ci  # the province console's browser tests
    assert "pip install -e .[test]\n" in ci  # what scripts/test.sh needs, without the 61 MB bench voice
    assert "bench" in plan("--bench")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"pytest", "pytest-timeout", "hypothesis", "onnx"} <= {r.split(">")[0].split("=")[0] for r in extras["test"]}
    assert not any("joe" in r or "matplotlib" in r for r in extras["test"])
