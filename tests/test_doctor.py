"""`loaxa doctor`: each line OK/WARN/FAIL with what to do; exit 1 on any FAIL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from loaxa.config import parse_config
from loaxa.doctor import FAIL, OK, WARN, check_audio, check_clock, check_permissions, check_voice
from loaxa.testing.audio import FifoSpeaker
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import STATION, Operator, StationProcess, station_config
from loaxa.testing.tinyvoice import make_tiny_voice


def doctor(
    config: dict[str, Any], root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = root / "doctor.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    path.chmod(0o600)
    return subprocess.run(
        [sys.executable, "-m", "loaxa", "doctor", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def findings(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return {f["check"]: f for f in json.loads(done.stdout)}


def test_a_healthy_station_passes_every_check(tmp_path):
    broker = start_mosquitto(tmp_path)
    op = Operator(broker.host, broker.port)
    root = tmp_path / "station"
    config = station_config(root, broker.port, f"wav:{tmp_path / 'aired'}")
    station = StationProcess(root, config).start()
    try:
        op.wait_state(lambda st: st["online"], 30)
        done = doctor(config, tmp_path, "--json")
        got = findings(done)
        assert list(got) == ["service", "audio", "voice", "fallback", "broker", "clock", "disk", "permissions", "store"]
        for check in ("service", "voice", "fallback", "broker", "disk", "permissions", "store"):
            assert got[check]["status"] == OK, got[check]
        assert got["audio"]["status"] == WARN and "no loudspeaker" in got["audio"]["detail"]
        assert got["clock"]["status"] in (OK, WARN)  # require_sync is off in test stations
        assert done.returncode == 0, done.stdout + done.stderr
        # the doctor's broker probe must not take the station's session over
        op.send({"type": "ping", "id": "after-doctor"})
        op.wait_for("after-doctor", "pong", 20)
    finally:
        assert station.stop() == 0, station.log()
        op.close()
        broker.stop()


def test_a_broken_station_fails_each_item_with_what_to_do(tmp_path):
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "loa-1", "right-password"], check=True, capture_output=True)
    broker = start_mosquitto(tmp_path, f"password_file {pwfile}", anonymous=False)
    speaker = FifoSpeaker(tmp_path)  # named, but not defined in ALSA
    try:
        config = station_config(tmp_path / "station", broker.port, speaker.name, tts__voice="vi_VN-vais1000-medium")
        config["mqtt"].update(username="loa-1", password="wrong-password")
        done = doctor(config, tmp_path, "--json", env=speaker.env)
    finally:
        broker.stop()
    got = findings(done)
    assert done.returncode == 1
    assert got["service"]["status"] == FAIL and "systemctl start loaxa" in got["service"]["fix"]
    assert got["audio"]["status"] == FAIL and "no audio output device named 'loaxa-speaker'" in got["audio"]["detail"]
    assert got["voice"]["status"] == FAIL and "loaxa voices install vi_VN-vais1000-medium" in got["voice"]["fix"]
    assert got["fallback"]["status"] == OK  # espeak still speaks
    assert got["broker"]["status"] == FAIL and "refused" in got["broker"]["detail"]
    assert "mqtt.username and mqtt.password" in got["broker"]["fix"]


def test_the_table_names_every_check_with_its_verdict(tmp_path):
    config = station_config(tmp_path / "station", 1, f"wav:{tmp_path / 'aired'}")  # nothing listens on port 1
    done = doctor(config, tmp_path, "--skip", "voice", "--skip", "fallback", env={"COLUMNS": "160"})
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    for check, verdict in (("service", FAIL), ("audio", WARN), ("broker", FAIL), ("disk", OK), ("permissions", OK)):
        assert any(check in line and verdict in line for line in lines), (check, done.stdout)
    assert "voice" not in done.stdout
    assert "problem(s) to fix" in done.stdout


def test_a_password_in_a_config_others_can_read_is_a_permission_failure(tmp_path):
    config = station_config(tmp_path / "station", 1, f"wav:{tmp_path / 'aired'}")
    config["mqtt"]["password"] = "secret"
    path = tmp_path / "loaxa.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loaxa",
            "doctor",
            "-c",
            str(path),
            "--json",
            *sum((["--skip", c] for c in ("service", "voice", "fallback", "broker")), []),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    perm = findings(done)["permissions"]
    assert perm["status"] == FAIL and f"chmod 600 {path}" in perm["fix"]


def settings(tmp_path: Path, **tts: Any):  # type: ignore[no-untyped-def]
    return parse_config(
        {
            "station": dict(zip(("province", "commune", "id"), STATION, strict=False)),
            "storage": {"dir": str(tmp_path)},
            "tts": tts,
        }
    )


@pytest.mark.parametrize(
    "synced, require, status",
    [(True, True, OK), (False, True, FAIL), (False, False, WARN), (None, True, WARN)],
)
def test_clock_verdicts(tmp_path, synced, require, status):
    s = settings(tmp_path).model_copy(
        update={
            "clock": parse_config(
                {"station": {"province": "a", "commune": "b", "id": "c"}, "clock": {"require_sync": require}}
            ).clock
        }
    )
    finding = check_clock(s, synced=lambda: synced)
    assert finding.status == status
    assert (finding.fix == "") == (status == OK)


def test_a_hanging_neural_voice_is_a_failure_within_the_deadline(tmp_path):
    onnx = make_tiny_voice(tmp_path / "voices", mode="hang")
    finding = check_voice(settings(tmp_path, voice=str(onnx), deadline_s=1.0))
    assert finding.status == FAIL
    assert "1 s" in finding.detail


def test_a_working_neural_voice_passes(tmp_path):
    onnx = make_tiny_voice(tmp_path / "voices")
    finding = check_voice(settings(tmp_path, voice=str(onnx)))
    assert finding.status == OK, finding
    assert "piper:xx_XX-tiny-x_low" in finding.detail


def test_audio_and_permission_checks_read_the_output_spec_like_the_player(tmp_path):
    def with_output(spec: str):  # type: ignore[no-untyped-def]
        return settings(tmp_path).model_copy(
            update={"audio": settings(tmp_path).audio.model_copy(update={"output": spec})}
        )

    null = check_audio(with_output("null"))
    assert null.status == WARN and "discarded" in null.detail
    aired = check_audio(with_output(f"wav:{tmp_path / 'aired'}"))
    assert aired.status == WARN and f"WAV files into {tmp_path / 'aired'} (no loudspeaker)" in aired.detail
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not os.access(locked, os.W_OK):  # root writes anywhere
        assert check_audio(with_output(f"wav:{locked}")).status == FAIL
    assert check_permissions(with_output(f"wav:{tmp_path}"), None).status == OK


def test_probe_voice_says_whether_this_cpu_runs_onnxruntime_without_a_config(tmp_path):
    def probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loaxa", "doctor", "--probe-voice"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, **env},
        )

    good = probe({})
    assert good.returncode == 0, good.stdout + good.stderr
    assert "neural voice runtime: OK: onnxruntime" in good.stdout and "ran xx_XX-tiny-x_low" in good.stdout
    fake = tmp_path / "fake-ort" / "onnxruntime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n", encoding="utf-8")
    bad = probe({"PYTHONPATH": str(fake.parent)})
    assert bad.returncode == 1
    assert "crashed on import with SIGILL: this CPU cannot run it; the station speaks with espeak-ng" in bad.stdout


def test_a_station_with_a_neural_voice_gets_the_runtime_check_before_the_voice(tmp_path):
    from loaxa.doctor import run_checks

    onnx = make_tiny_voice(tmp_path / "voices")
    got = run_checks(settings(tmp_path, voice=str(onnx)), skip=frozenset({"service", "broker", "audio"}))
    names = [f.check for f in got]
    assert names.index("runtime") == names.index("voice") - 1
    runtime = got[names.index("runtime")]
    assert runtime.status == OK and "child process" in runtime.detail, runtime
