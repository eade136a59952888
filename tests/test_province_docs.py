"""The province server's documents run as written: issue 14, items 5 and 6.

docs/integration.md (curl and jq against the API), the commands of
docs/province-server.md, and its light benchmark command, each against a
real broker, the server and stations.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from loaxa.province.lightfleet import BackgroundFleet
from loaxa.security import save_private_key
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.province import READY, ServerProcess, province_config

ROOT = Path(__file__).resolve().parent.parent
ENV_BIN = str(Path(sys.executable).parent)


def blocks(doc: str) -> list[str]:
    """The ```sh blocks of a page under docs/, as written."""
    return re.findall(r"```sh\n(.*?)```", (ROOT / "docs" / doc).read_text(encoding="utf-8"), re.S)


def shell(script: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env, cwd=cwd)
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_integration_guide_runs_as_written(tmp_path):
    """docs/integration.md: token, stations, submit, summary, receipts, revoke; the bulletin reaches every station."""
    broker = start_mosquitto(tmp_path)
    key_file = save_private_key(tmp_path / "issuer.key", Ed25519PrivateKey.generate(), "hn-2026")
    config = province_config(tmp_path, broker.port, province={"id": "hn"}, signing={"key_file": str(key_file)})
    server = ServerProcess(tmp_path, config).start()
    fleet = None
    try:
        api = server.wait_ready() + "/api/v1"
        fleet = BackgroundFleet(
            [("hn", "ba-vi", "loa-1"), ("hn", "ba-vi", "loa-2"), ("hn", "son-tay", "loa-1")], broker.host, broker.port
        )
        env = {**os.environ, "PATH": f"{ENV_BIN}:{os.environ['PATH']}", "LOAXA_API": api}
        env["LOAXA_PROVINCE_CONFIG"] = str(server.config_path)
        saved = tmp_path / "vars.sh"
        token, listing, follow, report, revoke = blocks("integration.md")

        def run(block: str) -> str:
            return shell(f"[ -f {saved} ] && source {saved}\n{block}\ndeclare -p LOAXA_TOKEN > {saved}", env, tmp_path)

        run(token)
        deadline = time.monotonic() + 30
        while (stations := run(listing.splitlines()[0])).count(" online") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stations.split("\n")[:3] == ["hn/ba-vi/loa-1 online", "hn/ba-vi/loa-2 online", "hn/son-tay/loa-1 online"]
        sent = run(listing)
        assert '"sender": "api:nguon-tinh"' in sent and '"stations": 3' in sent
        deadline = time.monotonic() + 30
        while '"finished":3' not in (followed := run(follow)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert '"finished":3' in followed and '"no_answer":0' in followed
        assert followed.strip().endswith("hn/son-tay/loa-1 finished")
        run(report)
        log_book = (tmp_path / "as-run.csv").read_text(encoding="utf-8-sig").splitlines()
        assert log_book[0].startswith("station,kind,priority,id,rev,issuer,state,slot,started,ended,seconds")
        assert sum(",b-2026-12-01-bao,1,hn-2026,finished," in line for line in log_book) == 3
        run(revoke)
        probe = 'curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $LOAXA_TOKEN" "$LOAXA_API/stations"'
        refused = subprocess.run(["bash", "-c", f"source {saved}; {probe}"], capture_output=True, text=True, env=env)
        assert refused.stdout == "401"
    finally:
        if fleet is not None:
            fleet.close()
        server.stop()
        broker.stop()


def test_province_server_commands_run_as_written(tmp_path):
    """docs/province-server.md: serve, then check, token add, stations, token revoke; SIGTERM stops it cleanly."""
    broker = start_mosquitto(tmp_path)
    (tmp_path / "province.yaml").write_text(yaml.safe_dump(province_config(tmp_path, broker.port)), encoding="utf-8")
    serve, tools = blocks("province-server.md")[:2]
    env = {**os.environ, "PATH": f"{ENV_BIN}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(shlex.split(serve.strip()), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not READY.search(log.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        url = READY.search(log.read_text()).group(1)
        out = shell(tools, env, tmp_path)
        assert '"id": "sim"' in out and "0 stations: 0 online, 0 offline, 0 silent" in out
        token = next(line for line in out.splitlines() if line.startswith("lxp_"))
        request = urllib.request.Request(f"{url}/api/v1/stations", headers={"Authorization": f"Bearer {token}"})
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("a revoked token was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        broker.stop()
    assert "stopped" in log.read_text()
    (report,) = [b for b in blocks("province-server.md") if "province report" in b]
    assert shell(report, env, tmp_path).startswith("\ufeffstation,kind,priority,id,rev,issuer,state")


def test_light_benchmark_runs_as_written_and_prints_its_figures():
    """docs/province-server.md's fleet_sim --light command: every receipt stored once, every figure printed."""
    command = next(b for b in blocks("province-server.md") if "fleet_sim.py --light" in b).strip()
    done = subprocess.run(shlex.split(command), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["complete"] is True and figures["stations"] == figures["summary_finished"] == 200
    assert figures["gaps"] == 0 and figures["ingest_events"] == 400
    for key in ("p50_received_s", "p99_received_s", "p99_finished_s", "p99_stored_s", "summary_query_s"):
        assert isinstance(figures[key], float) and 0 < figures[key] < 60, key
    assert figures["ingest_events_per_s"] > 0
    assert set(figures["peak_rss_mb"]) == {"broker", "server", "simulator"}


def test_console_accounts_commands_run_as_written(tmp_path):
    """docs/province-server.md, "The console": the first admin, then a user added, listed, given a new password
    and disabled, each line as written; the console answers each change at its login form."""
    from loaxa.testing.console import Client

    broker = start_mosquitto(tmp_path)
    server = ServerProcess(tmp_path, province_config(tmp_path, broker.port))  # writes tmp_path/province.yaml
    env = {**os.environ, "PATH": f"{ENV_BIN}:{os.environ['PATH']}"}
    try:
        url = server.start().wait_ready()
        first = next(b for b in blocks("province-server.md") if "user add admin --admin" in b)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", first],
            input="mật khẩu quản trị\n",  # stdin is not a terminal: its first line is the password
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert Client(url).login("admin", "mật khẩu quản trị") == 303
        (tmp_path / "password.txt").write_text("mật khẩu của lan\n", encoding="utf-8")
        (tmp_path / "new-password.txt").write_text("mật khẩu mới của lan\n", encoding="utf-8")
        add, listing, passwd, disable = next(b for b in blocks("province-server.md") if "user passwd" in b).splitlines()
        shell(add, env, tmp_path)
        assert Client(url).login("Lan", "mật khẩu của lan") == 303
        assert shell(listing, env, tmp_path).splitlines() == ["admin\tadmin\tactive", "lan\teditor\tactive"]
        shell(passwd, env, tmp_path)
        assert Client(url).login("lan", "mật khẩu của lan") == 401
        lan = Client(url)
        assert lan.login("lan", "mật khẩu mới của lan") == 303
        assert lan.get("/admin")[0] == 403  # logged in, as an editor
        shell(disable, env, tmp_path)
        assert lan.get("/admin")[0] == 303  # the session ended: back to the login form
        assert Client(url).login("lan", "mật khẩu mới của lan") == 401
    finally:
        server.stop()
        broker.stop()
