"""The neural voice's own process: onnxruntime and the model live here, never in the daemon.

    python -m loaxa.speech.voice_child MODEL.onnx [--threads N] [--deadline S] [--espeak-voice V]
    python -m loaxa.speech.voice_child --probe [MODEL.onnx]

onnxruntime builds that do not fit the CPU die on import (SIGILL on a
Raspberry Pi 4 with 1.21, SIGSEGV with 1.28 and later), and a model run can
abort or hang; here that costs this process only, and the daemon speaks
with espeak-ng meanwhile. Messages follow `voicewire`: stage reports while
starting (so a death can be named by what the child was doing), then one
answer per request: `pieces` (phonemes), `audio` (float32 bytes), `stats`.

`--probe` imports onnxruntime and runs one short phrase through a model (a
generated tiny voice when `onnx` is installed and no model is named, else
the import alone), then exits: what `loaxa doctor --probe-voice` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from loaxa.speech.voicewire import SAMPLE_DTYPE, Closed, read_message, write_message

PARENT_CHECK_S = 1.0
TEST_FAULT_KEY = "loaxa.testing.fault"  # only the tiny test voice carries it (loaxa.testing.tinyvoice)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Libraries print to stdout; the protocol keeps its own copy of that descriptor.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the daemon's to handle; it closes us
    _no_core_dumps()
    _exit_with_parent()

    def send(meta: dict[str, Any], payload: bytes = b"") -> None:
        write_message(out_fd, meta, payload)

    send({"stage": "importing onnxruntime"})
    try:
        import onnxruntime
    except Exception as exc:  # a broken install is a reason to give, not a traceback
        send({"ok": False, "error": f"onnxruntime cannot be imported: {type(exc).__name__}: {exc}"})
        return 2
    version = str(getattr(onnxruntime, "__version__", "?"))
    with tempfile.TemporaryDirectory(prefix="loaxa-probe-") as tmp:
        model = args.model or (_probe_model(Path(tmp)) if args.probe else None)
        if model is None:
            send({"ok": True, "stage": "ready", "onnxruntime": version, "model": None})
            return 0
        send({"stage": "loading the model", "onnxruntime": version})
        from loaxa.errors import VoiceError
        from loaxa.speech.piper import NeuralVoice

        try:
            voice = NeuralVoice.load(
                model, threads=args.threads, espeak_voice=args.espeak_voice, deadline_s=args.deadline
            )
        except VoiceError as exc:
            send({"ok": False, "error": str(exc)})
            return 3
        send({"ok": True, "stage": "ready", "onnxruntime": version, "model": str(model)})
        if args.probe:
            return 0
        return _serve(voice, send, _TestFault.of(voice))


def _serve(voice: Any, send: Any, fault: _TestFault) -> int:
    from loaxa.errors import VoiceError

    while True:
        try:
            meta, _ = read_message(0)
        except Closed:
            return 0  # the daemon closed our stdin: it stopped or dropped us
        op = meta.get("op")
        try:
            if op == "pieces":
                pieces = voice.pieces(str(meta["text"]), first_max=int(meta["first_max"]), max_len=int(meta["max_len"]))
                send({"ok": True, "pieces": pieces})
            elif op == "audio":
                fault.tick()
                samples = voice.ids_to_audio(
                    [int(i) for i in meta["ids"]], float(meta.get("rate", 1.0)), meta.get("speaker_id")
                )
                send({"ok": True, "samples": len(samples)}, samples.astype(SAMPLE_DTYPE).tobytes())
            elif op == "stats":
                send({"ok": True, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            elif op == "quit":
                send({"ok": True})
                return 0
            else:
                send({"ok": False, "error": f"unknown request {op!r}"})
        except VoiceError as exc:
            send({"ok": False, "error": str(exc)})
        except Closed:
            return 0
        except Exception as exc:  # a bad request must not end the voice
            send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


class _TestFault:
    """Test-only: the tiny test voice's metadata asks for a crash on its n-th run.

    Real Piper models carry no such key. `once` leaves a marker beside the
    model so that the restarted process runs normally.
    """

    def __init__(self, kind: str | None = None, run: int = 1, once: bool = True, marker: Path | None = None) -> None:
        self.kind, self.run, self.once, self.marker = kind, run, once, marker
        self.runs = 0

    @classmethod
    def of(cls, voice: Any) -> _TestFault:
        try:
            raw = voice.session.get_modelmeta().custom_metadata_map.get(TEST_FAULT_KEY)
        except Exception:
            raw = None
        if not raw:
            return cls()
        spec = json.loads(raw)
        marker = Path(str(voice.path) + ".fault-fired")
        return cls(str(spec["kind"]), int(spec.get("run", 1)), bool(spec.get("once", True)), marker)

    def tick(self) -> None:
        self.runs += 1
        if self.kind is None or self.runs != self.run:
            return
        if self.once and self.marker is not None:
            if self.marker.exists():
                return
            self.marker.write_text(self.kind, encoding="utf-8")
        if self.kind == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif self.kind == "abort":
            os.abort()
        elif self.kind == "hang":
            while True:
                time.sleep(3600)
        elif self.kind == "exit":
            os._exit(70)
        time.sleep(5)  # a signal is delivered before this returns


def _probe_model(tmp: Path) -> Path | None:
    """A tiny generated voice, when `onnx` is there to write one."""
    try:
        from loaxa.testing.tinyvoice import make_tiny_voice

        return make_tiny_voice(tmp)
    except ImportError:
        return None


def _no_core_dumps() -> None:
    # A crash loop must not fill a station's SD card with core files.
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass


def _exit_with_parent() -> None:
    """A daemon killed with -9 cannot close our pipes while a run hangs: watch it instead."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loaxa.speech.voice_child")
    p.add_argument("model", nargs="?", type=Path)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--deadline", type=float, default=20.0, help="warm-up deadline in seconds")
    p.add_argument("--espeak-voice", default=None)
    p.add_argument("--probe", action="store_true", help="import onnxruntime, run one phrase, exit")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
