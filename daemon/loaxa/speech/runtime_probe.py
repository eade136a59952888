"""Can this CPU run onnxruntime? Asked of a child process, with a timeout.

Some onnxruntime wheels die on import on a Raspberry Pi 4's Cortex-A72
(1.21 with SIGILL, 1.28 and later with SIGSEGV); imported in the daemon that
would take the station down. The probe runs `voice_child --probe`: import,
then one short phrase through a tiny generated voice (or the given model,
or the import alone when neither is at hand), and says what happened.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from loaxa.speech.voicewire import Closed, Late, describe_exit, read_message

PROBE_TIMEOUT_S = 120.0  # import and a tiny run take well under 10 s on a Pi 4


@dataclass(frozen=True)
class Probe:
    ok: bool
    version: str  # the installed onnxruntime, "" when none is installed
    verdict: str  # one sentence for a technician


def installed_version() -> str:
    """onnxruntime's version from its metadata, without importing it."""
    try:
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return ""


def probe_runtime(model: Path | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    version = installed_version()
    if not version:
        return Probe(False, "", "onnxruntime is not installed: the station speaks with espeak-ng")
    cmd = [sys.executable, "-m", "loaxa.speech.voice_child", "--probe", *([str(model)] if model else [])]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    stage = "starting"
    try:
        while True:
            try:
                meta, _ = read_message(proc.stdout.fileno(), started + timeout_s)
            except Late:
                proc.kill()
                return Probe(False, version, f"onnxruntime {version} did not finish {stage} within {timeout_s:g} s")
            except Closed:
                how = describe_exit(_wait(proc)).split(" (", 1)[0]
                if stage == "importing onnxruntime":
                    return Probe(
                        False,
                        version,
                        f"onnxruntime {version} crashed on import with {how}: this CPU cannot run it; "
                        "the station speaks with espeak-ng",
                    )
                return Probe(False, version, f"onnxruntime {version} crashed while {stage} with {how}")
            if "ok" in meta:
                if not meta["ok"]:
                    return Probe(False, version, f"onnxruntime {version}: {meta.get('error')}")
                took = time.monotonic() - started
                what = f"ran {Path(str(meta['model'])).name}" if meta.get("model") else "imported (no model to run)"
                return Probe(True, version, f"onnxruntime {version} {what} in {took:.1f} s in a child process")
            stage = str(meta.get("stage", stage))
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
        _wait(proc)


def _wait(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None
