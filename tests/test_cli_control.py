"""The control socket against a curious local user and a technician who gives up (issues 12 and 17).

The daemon runs as a subprocess (`loaxa run`) with more rights than the
person asking; the client is the real `loaxa` command, run as `nobody`
where the point is whose rights count.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from audio_servers import tone_file
from loaxa.control import IDLE_S, MAX_CONNECTIONS
from loaxa.testing.audio import FifoSpeaker
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config

NOBODY = 65534
LONG = " ".join(["Thông báo khẩn: nước sông đang lên nhanh, bà con vùng trũng di chuyển lên chỗ cao."] * 6)


def loaxa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loaxa", *args], capture_output=True, text=True, timeout=120)


def as_nobody(*args: str) -> tuple[int, str, str]:
    """`loaxa ARGS` run by the user `nobody` (a forked child of this test, which runs as root).

    What the command imports is imported first: `nobody` cannot read this Python's own folder.
    """
    import loaxa.cli.play
    import loaxa.cli.say
    import loaxa.config
    import loaxa.control  # noqa: F401

    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # noqa: SIM115 - the child writes them
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, then be the command
        code = 70
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sys.stdout, sys.stderr = out, err
            logging.root.handlers.clear()
            from loaxa.cli import main

            code = main(list(args))
        except BaseException as exc:
            err.write(f"{exc!r}\n")
        finally:
            out.flush(), err.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    out.seek(0), err.seek(0)
    return os.waitstatus_to_exitcode(status), out.read(), err.read()


@pytest.fixture
def rig(tmp_path):
    """A station whose control socket `nobody` may use (its group), in a folder `nobody` can reach."""
    broker = start_mosquitto(tmp_path)
    op = Operator(broker.host, broker.port)
    shared = Path(tempfile.mkdtemp(prefix="loaxa-ctl-"))
    shared.chmod(0o755)
    speaker = FifoSpeaker(tmp_path)
    speaker.plug_in()
    root = tmp_path / "station"
    config = station_config(root, broker.port, speaker.name, audio__chime=False, control__socket=str(shared / "ctl"))
    station = StationProcess(root, config, env=speaker.env).start()
    op.wait_state(lambda st: st["online"], 30)
    os.chown(shared / "ctl", -1, NOBODY)  # nobody's group may open it, as the daemon's group would
    readable = shared / "loaxa.yaml"  # a copy `nobody` can read (the test's folders are root's alone)
    readable.write_bytes(station.config_path.read_bytes())
    readable.chmod(0o644)
    station.public_config = readable  # type: ignore[attr-defined]
    yield station, op, shared / "ctl", tmp_path
    code = station.stop()
    speaker.unplug()
    op.close()
    broker.stop()
    assert code == 0, station.log()
    assert "Traceback" not in station.log()


def test_control_socket_reads_any_file_no_more_play_of_an_unreadable_file_is_refused(rig):
    """Issue 17: a group member's `play /etc/shadow` no longer copies it where they can read it."""
    station, op, sock, tmp = rig
    secret = sock.parent / "secret.wav"
    secret.write_bytes(tone_file(tmp, "wav").read_bytes())
    secret.chmod(0o600)  # root's, like /etc/shadow
    code, _, err = as_nobody("play", "--config", str(station.public_config), str(secret))
    assert code == 1, err
    assert "Permission denied" in err or "no such file" in err, err
    # The old request, naming a path for the daemon to open, is refused outright.
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(sock))
        raw.sendall(json.dumps({"cmd": "play", "file": str(secret)}).encode() + b"\n")
        reply = json.loads(raw.makefile().readline())
    assert reply["ok"] is False and "not its name" in reply["error"]
    audio = Path(station.config["storage"]["dir"]) / "audio"
    copies = [p for p in audio.rglob("*") if p.is_file() and p.read_bytes() == secret.read_bytes()]
    assert copies == []


def test_control_socket_play_of_a_file_the_caller_can_read_still_airs(rig):
    station, op, sock, tmp = rig
    mine = sock.parent / "mine.wav"
    mine.write_bytes(tone_file(tmp, "wav", seconds=0.5).read_bytes())
    mine.chmod(0o644)
    code, out, err = as_nobody("play", "--config", str(station.public_config), str(mine))
    assert code == 0, err + station.log()
    assert "played by the daemon" in out


def test_control_socket_nothing_the_daemon_writes_is_world_readable(rig):
    """Issue 17: store, caches and copies of played files are not for other users."""
    station, op, sock, tmp = rig
    assert loaxa("play", "--config", str(station.config_path), str(tone_file(tmp, "wav", seconds=0.3))).returncode == 0
    assert loaxa("say", "--config", str(station.config_path), "Xin chào.").returncode == 0
    storage = Path(station.config["storage"]["dir"])
    written = [p for p in storage.rglob("*") if not p.is_symlink()]
    assert any(p.parent.name == "audio" for p in written)
    for path in written:
        assert not path.stat().st_mode & (stat.S_IROTH | stat.S_IWOTH), f"{path} is {oct(path.stat().st_mode)}"


def test_control_socket_300_idle_connections_do_not_make_300_threads(rig):
    """Issue 17: bounded connections; idle ones are closed after IDLE_S."""
    station, op, sock, tmp = rig
    assert station.proc is not None
    tasks = Path(f"/proc/{station.proc.pid}/task")
    before = len(list(tasks.iterdir()))
    idle = []
    for _ in range(300):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(sock))
        idle.append(s)
    try:
        assert loaxa("status", "--config", str(station.config_path)).returncode in (0, 1)  # the accept loop lives
        assert len(list(tasks.iterdir())) <= before + MAX_CONNECTIONS + 1
        for s in idle:  # each is answered "busy" at once or closed when idle too long
            s.settimeout(IDLE_S + 10)
            while s.recv(4096):
                pass
    finally:
        for s in idle:
            s.close()
    assert len(list(tasks.iterdir())) <= before + 1
    status = loaxa("status", "--json", "--config", str(station.config_path))
    assert status.returncode == 0, status.stderr


def test_say_abandoned_by_its_caller_is_withdrawn(rig):
    """Issue 12: after Ctrl-C the sentence does not stay queued to air later."""
    station, op, sock, tmp = rig
    op.send({"type": "bulletin", "id": "flood-1", "priority": "emergency", "text": LONG})
    op.wait_for("flood-1", "started", 30)
    say = subprocess.Popen(
        [sys.executable, "-m", "loaxa", "say", "--config", str(station.config_path), "Câu này không được phát."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    received = op.next_event(len(op.events), 30)  # the say arrives behind the emergency
    while not (received["id"].startswith("say-") and received["event"] == "received"):
        received = op.next_event(op.events.index(received) + 1, 30)
    say.send_signal(signal.SIGINT)
    assert say.wait(30) == 130
    op.wait_for(received["id"], "cancelled", 30)
    op.wait_for("flood-1", "finished", 120)
    assert "started" not in op.of(received["id"])
    assert "BrokenPipeError" not in station.log()
