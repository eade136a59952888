"""docs/console.md, the operators' guide, runs as written (issue 15): its user commands and its benchmark line;
and the README's three lines that start a province server with its console.

The user commands run one line at a time in a folder holding the
`province.yaml` they name (a real broker, a real database), each given a
password on stdin as a script would (the command reads one line when stdin
is not a terminal); then the server starts on that configuration and each
account logs in, or is refused, as the guide says. The benchmark line runs
from the checkout, as the guide gives it.

The README's block is not a shell block (`tests/test_docs_commands.py`
runs those in a station's sandbox, where a server that runs until stopped
has no place): it is run here, in a folder shaped like a checkout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from loaxa.security import save_private_key
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.console import Client
from loaxa.testing.province import READY, ServerProcess, province_config
from test_province_docs import blocks

ROOT = Path(__file__).resolve().parent.parent
ENV_BIN = str(Path(sys.executable).parent)
GUIDE = ROOT / "docs" / "console.md"
README = ROOT / "README.md"


def secret(name: str, line: str) -> str:
    return ("mật khẩu mới " if " passwd " in line else "mật khẩu ") + name


def test_the_guides_user_commands_run_as_written_and_the_accounts_work(tmp_path):
    (users,) = [b for b in blocks("console.md") if "user add" in b]
    broker = start_mosquitto(tmp_path)
    config = province_config(tmp_path, broker.port, console={"secure_cookies": False})
    (tmp_path / "province.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "PATH": f"{ENV_BIN}:{os.environ['PATH']}"}
    printed = {}
    server = None
    try:
        for line in filter(None, (raw.strip() for raw in users.splitlines())):
            name = shlex.split(line)[4] if " list " not in line else ""
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", line],
                input=secret(name, line) + "\n",
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=60,
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            printed[line] = done.stdout
        listing = next(out for line, out in printed.items() if " list " in line)
        for name, role in (("hoa", "admin"), ("lan", "editor"), ("minh", "approver"), ("tuan", "viewer")):
            assert re.search(rf"^{name}\s+{role}\b", listing, re.M), listing

        server = ServerProcess(tmp_path, config).start()
        url = server.wait_ready()
        assert Client(url).login("hoa", "mật khẩu hoa") == 303
        assert Client(url).login("minh", "mật khẩu minh") == 303
        assert Client(url).login("lan", "mật khẩu mới lan") == 303  # the password `passwd` set
        assert Client(url).login("lan", "mật khẩu lan") != 303
        assert Client(url).login("tuan", "mật khẩu tuan") != 303  # disabled
    finally:
        if server is not None:
            server.stop()
        broker.stop()


def test_the_guides_benchmark_runs_as_written_and_prints_its_figures():
    (command,) = [b.strip() for b in blocks("console.md") if "bench_console.py" in b]
    done = subprocess.run(shlex.split(command), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["stations"] == figures["expected_by_server"] == 200
    for page in ("fleet", "watch_grid"):
        got = figures["pages"][page]
        assert (
            0 < got["server_s_median"] < 30
            and 0 < got["chromium"]["dom_interactive_s"] <= got["chromium"]["load_s"] < 60
        ), got
        assert 0 < got["page_gzip_bytes"] < got["page_bytes"] and got["assets"] >= 3, got
    live = figures["live"]
    assert live["receipts"] == 600 and live["lags_measured"] > 0 and 0 <= live["p50_lag_s"] <= live["p99_lag_s"]
    assert figures["keeps_up"] is True and live["stations_shown_finished"] == 200


def test_every_picture_the_guide_shows_is_in_the_docs():
    pictures = re.findall(r"!\[[^\]]*\]\((console/[^)]+)\)", GUIDE.read_text(encoding="utf-8"))
    assert len(pictures) >= 5
    missing = [p for p in pictures if not (ROOT / "docs" / p).is_file()]
    assert not missing, f"made by the console's browser tests (loaxa.testing.console.shoot): {missing}"


def readme_province_block() -> list[str]:
    """The lines of the README's "Province server and console" block, as written."""
    part = README.read_text(encoding="utf-8").split("## Province server and console", 1)[1]
    (block,) = re.findall(r"```text\n(.*?)```", part.split("\n## ", 1)[0], re.S)
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_starts_a_province_server_whose_console_its_admin_logs_in_to(tmp_path):
    copy, first_admin, serve = readme_province_block()
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "province.example.yaml", tmp_path / "config")
    env = {**os.environ, "PATH": f"{ENV_BIN}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    broker = start_mosquitto(tmp_path)
    proc = None
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", copy], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        # What the line's comment tells the reader to set; and a free port rather than 8640, as this machine is shared.
        config = yaml.safe_load((tmp_path / "province.yaml").read_text(encoding="utf-8"))
        config["province"]["id"] = "hn"
        config["broker"].update(host=broker.host, port=broker.port)
        config["data_dir"] = str(tmp_path / "data")
        config["signing"]["key_file"] = str(save_private_key(tmp_path / "hn.key", Ed25519PrivateKey.generate(), "hn"))
        config["http"]["port"] = 0
        (tmp_path / "province.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", first_admin],
            input="mật khẩu quản trị\n",  # stdin is not a terminal: its first line is the password
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        log = tmp_path / "serve.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", f"exec {serve}"], cwd=tmp_path, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while not READY.search(log.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        found = READY.search(log.read_text())
        assert found, log.read_text()
        admin = Client(found.group(1))
        assert admin.login("admin", "mật khẩu quản trị") == 303
        assert admin.get("/admin")[0] == 200  # the console's admin pages, open to the first admin
        assert Client(found.group(1)).login("admin", "a wrong password") == 401
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, (tmp_path / "serve.log").read_text()
        broker.stop()
