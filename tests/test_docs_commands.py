"""Every command line in README.md, docs/*.md and tts_models/README.md, run as written (issue 12).

The lines are found by `loaxa.testing.doccommands` (fenced shell blocks,
indented blocks, inline code that starts like a command), so a line added to
the docs later is run here too. They run in a sandbox a new user would have:
a temporary HOME whose ALSA default device writes into a file, a working
folder with `config/loaxa.example.yaml` (the real example, pointed at a
Mosquitto on a free port and a store in the sandbox; `$LOAXA_CONFIG` names
it, as the README says), `loaxa` on PATH, the README's station daemon
started by the README's own `loaxa run` line, and two more stations of
province `hn` (hn/ba-vi/loa-1 in group `flood`, hn/xa-a/loa-2).

Stand-ins, documented in the docs themselves: the operator tools' broker is
`$LOAXA_MQTT_HOST`/`$LOAXA_MQTT_PORT`; voices come from `$LOAXA_VOICES_URL`.
Where the docs write `…` for a value of the reader's own, the sandbox puts
its own: `https://…/` is the local file server, a hex digest ending in `…` is
the digest of the file that server has, `ID` a bulletin queued here, `DIR` a
new folder.

A few lines are not run here, each listed below with where it runs and why;
the test checks that they still parse (`bash -n`, `--help` knows every option).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from audio_servers import FileServer, tone_file
from loaxa.testing.audio import with_alsa_file
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.doccommands import DocCommand, documented_commands
from loaxa.testing.station import Operator, StationProcess, station_config
from test_cap_cli import fresh
from test_province_docs import blocks as province_blocks

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = documented_commands(ROOT)
TIMEOUT_S = 180

# Lines that do not run inside this test, with where they do run.
ELSEWHERE = {
    "scripts/setup.sh": "CI's first step (.ci/run); tests/test_install.py runs it with --dry-run",
    "scripts/test.sh": "this suite itself, in CI",
    "scripts/test.sh --stress": "this suite under load: a slower run of the same tests",
    "scripts/lint.sh": "CI's lint step (ruff and mypy over the whole tree: a minute of its own)",
    "sudo scripts/arm64-rig.sh": "needs root, qemu and 10-50 minutes: run before a release",
    "scripts/setup.sh --bench": "downloads the 61 MB benchmark voice; tests/test_install.py runs it with --dry-run",
    "scripts/setup.sh --station": "installs packages into .venv; tests/test_install.py runs it with --dry-run",
    "loaxa live": "tests/test_live.py runs it as written, on a station with a fed input, until Ctrl-C",
    "sudo scripts/install-service.sh": "changes this machine's users; tests/test_install.py runs it with --root DIR",
}
# Measurements behind the README's figures: minutes each, run by hand for the figures.
MEASUREMENTS = (
    "scripts/soak.py ",
    "loaxa bench ",
    ".venv/bin/python scripts/bench_",
    ".venv/bin/python scripts/fleet_sim.py",
    ".venv/bin/python scripts/soak.py ",
)
# Runs forever by design: started, seen working, stopped with SIGTERM (exit 0).
SERVICES = ("loaxa cap --bridge ",)
# Outcomes other than exit 0 that are what the docs promise in the sandbox.
EXPECTED = {
    # The stand-in cannot serve the real 63 MB voice: the pinned size and SHA-256 refuse its bytes.
    "loaxa voices install vi_VN-vais1000-medium": (1, r"pinned|does not match|size"),
}


# Pages whose every ```sh block another test runs as written, in a sandbox of its own.
RUN_BY = {
    "docs/integration.md": "tests/test_province_docs.py, against a province server, broker and stations",
    "docs/province-server.md": "tests/test_province_docs.py, against a province server, broker and stations",
    # the console's guide
    "docs/console.md": "tests/test_console_docs.py, against a province server and its console",
}


def _kind(command: DocCommand) -> str:
    line = command.line
    if command.source.split(":")[0] in RUN_BY:
        return "own test"
    if line in ELSEWHERE:
        return "elsewhere"
    if any(line.startswith(p) for p in MEASUREMENTS):
        return "measurement"
    if "loaxa run " in line:
        return "daemon"
    if any(p in line for p in SERVICES):
        return "service"
    return "run"


TO_RUN = [c for c in COMMANDS if _kind(c) in ("run", "service")]


def test_the_docs_have_commands_and_every_one_is_run_or_accounted_for() -> None:
    assert len(COMMANDS) > 40, [c.line for c in COMMANDS]
    kinds = {c.line: _kind(c) for c in COMMANDS}
    assert list(kinds.values()).count("daemon") == 1, "the README's `loaxa run` line starts the sandbox daemon"
    stale = set(ELSEWHERE) - set(kinds)
    assert not stale, f"listed as run elsewhere but no longer in the docs: {stale}"
    for command in (c for c in COMMANDS if _kind(c) == "own test"):
        page = command.source.split(":")[0].removeprefix("docs/")
        assert any(command.line in block for block in province_blocks(page)), (
            f"{command.source}: `{command.line}` is outside the ```sh blocks that {RUN_BY['docs/' + page]} runs"
        )


@pytest.mark.parametrize(
    "command",
    [c for c in COMMANDS if _kind(c) in ("elsewhere", "measurement")],
    ids=lambda c: f"{c.source} {c.line[:48]}",
)
def test_a_command_not_run_here_still_parses(command: DocCommand) -> None:
    words = command.words()
    if words[0] == "sudo":
        words = words[1:]
    if words[0] == "loaxa":
        words = [str(ROOT / ".venv/bin/loaxa"), *words[1:]]
    script = next(w for w in words if w.startswith(("scripts/", str(ROOT))))
    if script.endswith(".sh"):
        done = subprocess.run(["bash", "-n", script], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return
    at = words.index(script) + 1
    helped = subprocess.run(
        [*words[:at], *_sub_command(words[at:]), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0, helped.stderr
    for option in (w.split("=")[0] for w in words[at:] if w.startswith("--")):
        assert option in helped.stdout, f"{command.source}: {option} is not an option of {script}"


def _sub_command(rest: list[str]) -> list[str]:
    return rest[:1] if rest and not rest[0].startswith("-") else []


# -- the sandbox ------------------------------------------------------------------------


class Sandbox:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.work = tmp / "work"
        self.broker = start_mosquitto(tmp)
        self.env, self.played = with_alsa_file(tmp)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "loaxa").symlink_to(ROOT / ".venv/bin/loaxa")
        self.env.update(
            PATH=f"{bin_dir}{os.pathsep}{ROOT / '.venv/bin'}{os.pathsep}{os.environ['PATH']}",
            LOAXA_CONFIG=str(self.work / "config/loaxa.example.yaml"),
            LOAXA_MQTT_HOST=self.broker.host,
            LOAXA_MQTT_PORT=str(self.broker.port),
            PYTHONUNBUFFERED="1",
            COLUMNS="100",
        )
        self.env.pop("XDG_CONFIG_HOME", None)
        self.server = FileServer({}).__enter__()
        self.daemon: subprocess.Popen[bytes] | None = None
        self.ran: dict[str, subprocess.CompletedProcess[str]] = {}  # lines run while setting up
        self.outputs: list[str] = []  # what every command printed, for the hints in it
        self.stations: list[StationProcess] = []
        self.queued: dict[str, str] = {}

    def url(self) -> str:
        return self.server.url("")

    def prepare(self) -> None:
        work = self.work
        (work / "config").mkdir(parents=True)
        (work / ".venv").symlink_to(ROOT / ".venv")
        (work / "scripts").symlink_to(ROOT / "scripts")
        shutil.copy(ROOT / "config/lexicon.local.yaml", work / "config/lexicon.local.yaml")
        example = yaml.safe_load((ROOT / "config/loaxa.example.yaml").read_text(encoding="utf-8"))
        example["mqtt"].update(host=self.broker.host, port=self.broker.port, keepalive_s=5, reconnect_max_s=2)
        example["storage"]["dir"] = str(self.tmp / "var-demo")
        example["clock"]["require_sync"] = False  # this machine's kernel says unsynchronised
        example["broadcast"]["quiet_hours"] = None
        example["tts"].update(voice="vi_VN-tiny-x_low", voices_dir=str(self.tmp / "voices"))
        (work / "config/loaxa.example.yaml").write_text(yaml.safe_dump(example, allow_unicode=True))
        from loaxa.testing.tinyvoice import make_tiny_voice

        make_tiny_voice(self.tmp / "voices", name="vi_VN-tiny-x_low")
        (work / "bulletin.txt").write_text("Ngày 2/9, UBND xã họp lúc 7h30.\nNhiệt độ 25°C.\n", encoding="utf-8")
        (work / "bulletin.json").write_text(
            json.dumps({"type": "bulletin", "text": "Xin chào bà con.", "priority": "normal"}, ensure_ascii=False)
        )
        shutil.copy(tone_file(self.tmp, "mp3", seconds=1.0), work / "announcement.mp3")
        lu = tone_file(self.tmp, "mp3", seconds=1.5, freq=660)
        alert = fresh("storm_alert.xml", self.tmp)
        self.server.files.update(
            {
                "lu.mp3": lu.read_bytes(),
                "alert.xml": alert.read_bytes(),
                "alerts.atom": (
                    '<feed xmlns="http://www.w3.org/2005/Atom"><title>Cảnh báo</title>'
                    f'<entry><link type="application/cap+xml" href="{self.server.url("alert.xml")}"/></entry></feed>'
                ).encode(),
            }
        )
        shutil.copy(alert, work / "alert.xml")
        voice = self.tmp / "voices" / "vi_VN-tiny-x_low.onnx"
        for suffix in (".onnx", ".onnx.json"):  # the stand-in voice repository: the right names, other bytes
            self.server.files[f"vi_VN-vais1000-medium{suffix}"] = voice.with_suffix(suffix).read_bytes()
        self.env["LOAXA_VOICES_URL"] = self.url().rstrip("/")
        # The docs' `keys generate` lines, run as written; their snippets go into the stations' configs
        # as the docs tell the technician to do.
        issuers = []
        for command in (c for c in COMMANDS if " keys generate" in c.line):
            done = self.ran[command.line] = self.run(command.line)
            if done.returncode == 0:
                issuers += yaml.safe_load(done.stdout)["security"]["issuers"]
        for station, groups in ((("hn", "ba-vi", "loa-1"), ["flood"]), (("hn", "xa-a", "loa-2"), [])):
            root = self.tmp / station[2]
            config = station_config(root, self.broker.port, f"wav:{root / 'aired'}", audio__chime=False)
            config["station"].update(province=station[0], commune=station[1], id=station[2])
            config["mqtt"]["groups"] = groups
            config["security"] = {**config["security"], "issuers": issuers}
            self.stations.append(StationProcess(root, config).start())

    def start_daemon(self, command: DocCommand) -> None:
        log = (self.tmp / "daemon.log").open("wb")
        self.daemon = subprocess.Popen(
            ["/bin/bash", "-c", f"exec {command.line}"], cwd=self.work, env=self.env, stdout=log, stderr=log
        )
        demo = Operator(self.broker.host, self.broker.port, ("demo-province", "demo-commune", "station-1"))
        hn = [
            Operator(
                self.broker.host, self.broker.port, tuple(s.config["station"][k] for k in ("province", "commune", "id"))
            )
            for s in self.stations
        ]
        try:
            demo.wait_state(lambda st: st["online"], 60)
            for op in hn:
                op.wait_state(lambda st: st["online"], 60)
            # Bulletins the docs name: `loaxa cancel ID`, and `--cancel b-20250914T170000-123` for hn.
            later = {"daily": ["04:00"]}
            demo.send(_command("queued-1", later))
            demo.wait_for("queued-1", "scheduled", 30)
            self.queued["ID"] = "queued-1"
            for op in hn:
                op.send(_command("b-20250914T170000-123", later))
                op.wait_for("b-20250914T170000-123", "scheduled", 30)
        finally:
            for op in (demo, *hn):
                op.close()

    def substitute(self, line: str) -> str:
        """The sandbox's own values where the docs write `…`, ID or DIR."""
        line = line.replace("https://…/", self.url()).replace("https://pctt.example.vn/", self.url())
        line = re.sub(
            r"(\S+/(\S+?)) --sha256 [0-9a-f]*…",
            lambda m: f"{m.group(1)} --sha256 {hashlib.sha256(self.server.files[m.group(2)]).hexdigest()}",
            line,
        )
        words = shlex.split(line)
        if "ID" in words:
            line = re.sub(r"\bID\b", self.queued["ID"], line)
        if "DIR" in words:
            line = re.sub(r"\bDIR\b", str(self.tmp / f"dir-{time.monotonic_ns()}"), line)
        return line

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            line,
            shell=True,
            executable="/bin/bash",
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        self.outputs.append(done.stdout + done.stderr)
        return done

    def serve(self, line: str) -> tuple[int, str]:
        """A command that runs until stopped: it must publish, then stop on SIGTERM with code 0."""
        out = self.tmp / f"service-{time.monotonic_ns()}.log"
        with out.open("wb") as log:
            proc = subprocess.Popen(
                ["/bin/bash", "-c", f"exec {line}"], cwd=self.work, env=self.env, stdout=log, stderr=log
            )
            deadline = time.monotonic() + 60
            while "published" not in out.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        return code, out.read_text()

    def close(self) -> None:
        code = None
        if self.daemon is not None:
            self.daemon.send_signal(signal.SIGTERM)
            code = self.daemon.wait(30)
        for station in self.stations:
            station.stop()
        self.server.stop()
        self.broker.stop()
        assert code == 0, (self.tmp / "daemon.log").read_text()


def _command(id: str, schedule: dict[str, Any]) -> dict[str, Any]:
    return {"type": "bulletin", "id": id, "text": "Xin chào.", "schedule": schedule}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("docs"))
    try:
        box.prepare()
        (daemon,) = [c for c in COMMANDS if _kind(c) == "daemon"]
        box.start_daemon(daemon)
        yield box
    finally:
        box.close()


@pytest.mark.parametrize("command", TO_RUN, ids=lambda c: f"{c.source} {c.line[:48]}")
def test_the_command_works_as_the_docs_write_it(sandbox: Sandbox, command: DocCommand) -> None:
    line = sandbox.substitute(command.line)
    if _kind(command) == "service":
        code, output = sandbox.serve(line)
        assert code == 0, f"{command.source}: {line}\n{output}"
        assert "published" in output, output
        return
    done = sandbox.ran.get(command.line) or sandbox.run(line)
    output = done.stdout + done.stderr
    want_code, want_text = EXPECTED.get(command.line, (0, None))
    assert done.returncode == want_code, f"{command.source}: {line}\nexit {done.returncode}\n{output}"
    if want_text:
        assert re.search(want_text, output), output
    assert "Traceback" not in output, output


HINT = re.compile(r"`((?:\.venv/bin/)?loaxa [^`]+)`|with: ((?:\.venv/bin/)?loaxa \S.*)$", re.M)


def test_printed_hints_work_as_written(sandbox: Sandbox) -> None:
    """A `loaxa …` command that a command prints as advice runs as printed (issue 12)."""
    empty = sandbox.tmp / "no-voices"
    empty.mkdir(exist_ok=True)
    sandbox.run(f"loaxa voices list --dir {empty}")  # prints how to install one
    hints = {h for out in sandbox.outputs for m in HINT.finditer(out) for h in m.groups() if h}
    assert "loaxa voices install vi_VN-vais1000-medium" in hints
    for hint in sorted(hints):
        done = sandbox.run(hint)
        output = done.stdout + done.stderr
        want_code, want_text = EXPECTED.get(hint, (0, None))
        assert done.returncode == want_code, f"hint {hint}\nexit {done.returncode}\n{output}"
        assert "Traceback" not in output and "unrecognized arguments" not in output, output
