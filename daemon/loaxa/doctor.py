"""`loaxa doctor`: a checklist a technician can read on site.

Each check returns one `Finding`: OK, WARN (works, but look at it) or FAIL
(the station cannot do its job), with what was found and what to do. The
checks only read, probe and play a moment of silence; they never change the
station's store or its MQTT session.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loaxa.config import Settings
from loaxa.errors import LoaxaError
from loaxa.i18n import _
from loaxa.player.output import build_sink, parse_output_spec

log = logging.getLogger(__name__)

OK, WARN, FAIL = "OK", "WARN", "FAIL"
DISK_FAIL_MB = 100
DISK_WARN_MB = 500
BROKER_TIMEOUT_S = 5.0
SERVICE = "loaxa"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# -- audio -----------------------------------------------------------------------


def check_audio(settings: Settings) -> Finding:
    """The output is found and accepts a moment of silence."""
    output = parse_output_spec(settings.audio.output)
    if output.kind == "null":
        return Finding(
            "audio", WARN, "output is 'null': sound is discarded", "set audio.output to the sound card's name"
        )
    if output.kind == "wav":
        assert output.folder is not None
        folder = _existing(output.folder)
        if not os.access(folder, os.W_OK | os.X_OK):
            return Finding(
                "audio", FAIL, f"{folder} is not writable", f"make {output.folder} writable by the service user"
            )
        detail = f"output writes WAV files into {output.folder} (no loudspeaker)"
        return Finding("audio", WARN, detail, "set audio.output to the sound card")
    try:
        sink = build_sink(output, settings.audio.latency_s)
        out = sink.open(settings.audio.sample_rate_hz, label="doctor")
        try:
            out.write(np.zeros(int(0.2 * settings.audio.sample_rate_hz), dtype=np.float32))
        finally:
            out.close()
    except (LoaxaError, OSError) as exc:
        fix = _("check the cable or USB sound card, or set audio.output to a device found") + _if_installed(
            "aplay", _(" (`aplay -L` lists them too)")
        )
        fix += _("; the service user needs the `audio` group")
        return Finding("audio", FAIL, str(exc), fix)
    return Finding("audio", OK, _("{device} found and played 0.2 s of silence").format(device=sink.describe()))


# -- voices ----------------------------------------------------------------------


def check_live_input(settings: Settings) -> Finding:
    """`audio.live_input` names an input device PortAudio can see (for `loaxa live`)."""
    import sounddevice as sd

    from loaxa.sources.live import find_input

    name = settings.audio.live_input or ""
    try:
        find_input(name)
    except LoaxaError as exc:
        found = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
        fix = f"set audio.live_input to one of: {', '.join(found)}" if found else "plug in the microphone or line input"
        return Finding("live", FAIL, str(exc), fix)
    return Finding("live", OK, f"input {name!r} found for live announcements")


def check_voice(settings: Settings, spec: str | None = None, role: str = "voice") -> Finding:
    """The voice loads and speaks a short phrase."""
    from loaxa.speech.pipeline import load_voice

    spec = spec or settings.tts.voice
    name = role
    started = time.perf_counter()
    try:
        voice = load_voice(spec, settings.tts)
        try:
            samples = _within(lambda: voice.synthesize("Xin chào bà con.", 1.0), settings.tts.deadline_s)
        finally:
            voice.close()
    except LoaxaError as exc:
        fix = (
            _("install it: `loaxa voices install {name}`").format(name=spec)
            if not spec.startswith("espeak:")
            else _("install espeak-ng: `apt install espeak-ng`")
        )
        return Finding(name, FAIL, f"{spec}: {exc}", fix)
    seconds = len(samples) / voice.sample_rate
    if len(samples) == 0 or not np.isfinite(samples).all() or float(np.abs(samples).max(initial=0.0)) < 1e-3:
        return Finding(
            name,
            FAIL,
            _("{name} loads but produces no sound").format(name=spec),
            _("reinstall it: `loaxa voices install {name}`").format(name=spec),
        )
    problem = _pinned_problem(settings, spec)
    if problem:
        return Finding(
            name,
            WARN,
            _("{name} speaks, but {problem}").format(name=spec, problem=problem),
            _("reinstall it: `loaxa voices install {name}`").format(name=spec),
        )
    took = time.perf_counter() - started
    return Finding(
        name,
        OK,
        _("{name} loaded and spoke {seconds} s in {took} s").format(
            name=voice.name, seconds=f"{seconds:.1f}", took=f"{took:.1f}"
        ),
    )


def check_neural_runtime(settings: Settings) -> Finding:
    """onnxruntime imports and runs a tiny voice in a child process on this CPU."""
    import importlib.util

    from loaxa.speech.runtime_probe import probe_runtime

    model = None
    if importlib.util.find_spec("onnx") is None:  # no tiny voice can be written: try the station's own
        try:
            from loaxa.speech.voices import find_voice

            model = find_voice(settings.tts.voice, settings.tts.voices_dir)
        except LoaxaError:
            model = None
    probe = probe_runtime(model)
    if probe.ok:
        return Finding("runtime", OK, probe.verdict)
    fix = (
        "install the pinned onnxruntime: `.venv/bin/pip install -e .` (onnxruntime>=1.22,<1.28 runs on a Pi 4)"
        if probe.version
        else "install it: `.venv/bin/pip install -e .`"
    )
    return Finding("runtime", FAIL, probe.verdict, fix)


def _within(work: Callable[[], Any], seconds: float) -> Any:
    """Run `work` with a deadline; a hung voice is a finding, not a hung doctor."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="doctor-voice", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise LoaxaError(f"gave no audio within {seconds:g} s (tts.deadline_s)")
    if "error" in box:
        error = box["error"]
        raise error if isinstance(error, LoaxaError) else LoaxaError(f"crashed: {error}")
    return box["value"]


def _pinned_problem(settings: Settings, spec: str) -> str | None:
    """A catalogue voice whose files differ from the pinned download."""
    if spec.startswith("espeak:"):
        return None
    try:
        from loaxa.speech.voices import verify

        for name, problem in verify(settings.tts.voices_dir, load=False):
            if name == spec and problem:
                return problem
    except (LoaxaError, OSError, TypeError) as exc:
        log.debug("voice verification unavailable: %s", exc)
    return None


# -- broker ----------------------------------------------------------------------


def check_broker(settings: Settings) -> Finding:
    """The running daemon's own link; with no daemon, a connection with the station's credentials.

    Never both: a province broker binds each login to one client id
    (`use_username_as_clientid`), so a second connection with the station's
    login would close the daemon's and clear its session.
    """
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from loaxa.mqttclient import make_client

    m = settings.mqtt
    where = f"{m.host}:{m.port}"
    link = _daemon_link(settings)
    if link is not None:
        return _link_finding(link, where)
    try:
        # Not the station's own client id; a broker that binds logins to client ids
        # gives it anyway, so the session is resumed, never cleared, and nothing
        # it holds is acknowledged: the station gets it all when it connects.
        client = make_client(m, f"loaxa-doctor-{os.getpid()}", manual_ack=True)
    except (OSError, ValueError) as exc:
        return Finding("broker", FAIL, f"TLS files unusable: {exc}", "check mqtt.tls.ca_file, cert_file and key_file")
    answer: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        answer["reason"] = reason
        done.set()

    client.on_connect = on_connect
    try:
        keep = Properties(PacketTypes.CONNECT)
        keep.SessionExpiryInterval = m.session_expiry_s
        client.connect(m.host, m.port, keepalive=10, clean_start=False, properties=keep)
    except (OSError, ValueError) as exc:
        return Finding(
            "broker", FAIL, f"cannot reach {where}: {exc}", "check mqtt.host/port, the network and the broker service"
        )
    client.loop_start()
    try:
        if not done.wait(BROKER_TIMEOUT_S):
            return Finding(
                "broker",
                FAIL,
                f"{where} did not answer within {BROKER_TIMEOUT_S:g} s",
                "check the broker and the firewall",
            )
        reason = answer["reason"]
        if reason.is_failure:
            fix = _("check mqtt.username and mqtt.password against the broker's password file")
            if "authori" not in str(reason).lower() and "password" not in str(reason).lower():
                fix = _("check the broker's log")
            detail = _("{where} refused the connection: {reason}").format(where=where, reason=reason)
            return Finding("broker", FAIL, detail, fix)
        who = f"as {m.username}" if m.username else "anonymously"
        return Finding("broker", OK, f"connected to {where} {who}{' over TLS' if m.tls else ''}")
    finally:
        client.disconnect()
        client.loop_stop()


# -- clock, disk, permissions ----------------------------------------------------


def check_clock(settings: Settings, synced: Callable[[], bool | None] | None = None) -> Finding:
    from loaxa.clock import clock_synced

    state = (synced or clock_synced)()
    if state:
        return Finding("clock", OK, _("synchronised (NTP)"))
    fix = _if_installed(
        "timedatectl", _("enable time sync: `sudo timedatectl set-ntp true`; "), _("install chrony; ")
    ) + _("check the network")
    if state is None:
        return Finding("clock", WARN, _("cannot tell whether the clock is synchronised"), fix)
    if settings.clock.require_sync:
        return Finding("clock", FAIL, _("not synchronised: scheduled bulletins are held until it is"), fix)
    return Finding(
        "clock", WARN, _("not synchronised, and clock.require_sync is off: slots may fire at wrong times"), fix
    )


def check_disk(settings: Settings) -> Finding:
    folder = _existing(settings.storage.dir)
    usage = shutil.disk_usage(folder)
    free_mb = usage.free / 1e6
    detail = _("{free} MB free on the disk of {folder}").format(free=f"{free_mb:,.0f}", folder=settings.storage.dir)
    fix = (
        _("free space")
        + _if_installed("journalctl", _(": old logs (`journalctl --vacuum-size=50M`),"))
        + _(" or lower tts.cache_max_mb")
    )
    if free_mb < DISK_FAIL_MB:
        return Finding("disk", FAIL, detail, fix)
    if free_mb < DISK_WARN_MB:
        return Finding("disk", WARN, detail, fix)
    return Finding("disk", OK, detail)


def check_permissions(settings: Settings, config_file: Path | None) -> Finding:
    problems: list[str] = []
    fixes: list[str] = []
    store = settings.storage.dir
    target = store if store.exists() else _existing(store)
    if not os.access(target, os.W_OK | os.X_OK):
        problems.append(f"{target} is not writable")
        fixes.append(f"`sudo chown -R loaxa: {store}`")
    if config_file is not None and settings.mqtt.password:
        mode = config_file.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            problems.append(f"{config_file} holds the broker password and is readable by others")
            fixes.append(f"`chmod 600 {config_file}`")
    if parse_output_spec(settings.audio.output).loudspeaker and Path("/dev/snd").is_dir():
        nodes = [p for p in Path("/dev/snd").iterdir() if p.name.startswith("pcm")]
        if nodes and not any(os.access(p, os.R_OK | os.W_OK) for p in nodes):
            problems.append("no access to /dev/snd")
            fixes.append("add the service user to the `audio` group")
    if problems:
        return Finding("permissions", FAIL, "; ".join(problems), "; ".join(fixes))
    return Finding(
        "permissions",
        OK,
        f"{store} writable" + (f", {config_file.name} private" if config_file and settings.mqtt.password else ""),
    )


def check_store(settings: Settings) -> Finding:
    """The station's store: its folder writable, the file intact and the one the station last wrote."""
    from loaxa.store.examine import examine

    verdict = examine(settings.storage.dir / "station.db", keep_s=settings.storage.keep_days * 86400)
    return Finding("store", verdict.status, verdict.detail, verdict.fix)


def _daemon_link(settings: Settings) -> dict[str, Any] | None:
    """The link state of the daemon answering on the control socket, or None when none answers."""
    from loaxa.control import request

    try:
        reply = request(settings.control_socket, {"cmd": "status"}, timeout_s=3)
    except LoaxaError:
        return None
    link = (reply.get("state") or {}).get("link")
    return link if isinstance(link, dict) else None


def _link_finding(link: dict[str, Any], where: str) -> Finding:
    since = link.get("since") or "?"
    if link.get("state") == "connected":
        return Finding(
            "broker", OK, _("the running daemon is connected to {where} since {since}").format(where=where, since=since)
        )
    detail = _("the running daemon is {state} ({where}) since {since}: {error}").format(
        state=link.get("state"), where=where, since=since, error=link.get("error") or "-"
    )
    fix = _("check mqtt.host/port, mqtt.username/password, the network and the broker's log")
    return Finding("broker", FAIL, detail, fix)


def _if_installed(tool: str, text: str, otherwise: str = "") -> str:
    """A hint that names a tool only where it is installed."""
    return text if shutil.which(tool) else otherwise


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# -- service -----------------------------------------------------------------------


def check_service(settings: Settings) -> Finding:
    """The daemon answers on its control socket, and says it is healthy."""
    from loaxa.control import request

    try:
        reply = request(settings.control_socket, {"cmd": "status"}, timeout_s=5)
    except LoaxaError as exc:
        unit = _systemd_state()
        detail = f"{exc}" + (_("; systemd says the unit is {state}").format(state=unit) if unit else "")
        fix = _("start it: `sudo systemctl start {unit}`; see `journalctl -u {unit}`").format(unit=SERVICE)
        return Finding("service", FAIL, detail, fix)
    health = reply.get("health") or []
    state = reply.get("state", {})
    if health:
        return Finding(
            "service",
            FAIL,
            _("running but unhealthy: ") + "; ".join(health),
            _("see `journalctl -u {unit}`; restart it").format(unit=SERVICE),
        )
    faults = reply.get("faults") or []
    running = _("running {seconds} s").format(seconds=state.get("uptime_s", 0))
    if faults:
        serious = any(f.startswith(("broker", "audio output")) for f in faults)
        return Finding(
            "service",
            FAIL if serious else WARN,
            _("{running}, but: ").format(running=running) + "; ".join(faults),
            _("the broker and audio rows below say what to check; `loaxa status` shows it live"),
        )
    online = _("online") if state.get("online") else _("offline")
    return Finding("service", OK, _("{running}, {online}, health ok").format(running=running, online=online))


def _systemd_state() -> str | None:
    if shutil.which("systemctl") is None:
        return None
    try:
        done = subprocess.run(
            ["systemctl", "is-active", SERVICE], capture_output=True, text=True, timeout=3, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


# -- all of them -------------------------------------------------------------------


def run_checks(
    settings: Settings, config_file: Path | None = None, skip: frozenset[str] = frozenset()
) -> list[Finding]:
    """Every check in the order a technician would walk through them."""
    checks: list[tuple[str, Callable[[], Finding]]] = [
        ("service", lambda: check_service(settings)),
        ("audio", lambda: check_audio(settings)),
        ("live", lambda: check_live_input(settings)),
        ("runtime", lambda: check_neural_runtime(settings)),
        ("voice", lambda: check_voice(settings)),
        ("fallback", lambda: check_voice(settings, settings.tts.fallback, "fallback")),
        ("broker", lambda: check_broker(settings)),
        ("clock", lambda: check_clock(settings)),
        ("disk", lambda: check_disk(settings)),
        ("permissions", lambda: check_permissions(settings, config_file)),
        ("store", lambda: check_store(settings)),
    ]
    findings = []
    for name, check in checks:
        if name in skip or (name == "fallback" and not settings.tts.fallback):
            continue
        if name == "live" and not settings.audio.live_input:  # no live announcements on this station
            continue
        if name == "runtime" and settings.tts.voice.startswith("espeak:"):  # no neural voice to run
            continue
        try:
            findings.append(check())
        except Exception as exc:  # one broken probe must not hide the other lines
            log.debug("check %s crashed", name, exc_info=True)
            findings.append(
                Finding(name, FAIL, f"the check itself failed: {exc}", "report this with `loaxa doctor -vv`")
            )
    return findings
