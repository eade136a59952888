"""The daemon's side of the neural voice: a Piper voice answered by a child process.

`VoiceProcess` is a `PhonemeVoice` like `NeuralVoice`, so `Speaker`'s
streaming, short first piece, cache and fallback work unchanged; but
onnxruntime and the model run in `python -m loaxa.speech.voice_child`, and
this process never imports onnxruntime. A child that dies (SIGSEGV, SIGILL,
abort) or misses a request's deadline costs the request in flight: it raises
`VoiceError` naming the cause, `Speaker` hands the rest of the bulletin to
espeak-ng, and the child is started again after 1, 2, 4 … s (at most 5 min).
Phoneme ids are mapped here, from the voice's own `.onnx.json`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loaxa.errors import VoiceError
from loaxa.hashing import sha256_file
from loaxa.speech.piper import MAX_PIECE_PHONEMES, VoiceModel, _replace, phoneme_ids
from loaxa.speech.voicewire import SAMPLE_DTYPE, Closed, Late, describe_exit, read_message, write_message

log = logging.getLogger(__name__)

CHILD_MODULE = "loaxa.speech.voice_child"
# Importing onnxruntime and building a 63 MB session takes seconds on a Pi 4; a minute means it is stuck.
LOAD_DEADLINE_S = 120.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
STABLE_S = 600.0  # a child that served this long before dying starts the back-off afresh
EXIT_WAIT_S = 2.0


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    stage: str = "starting"
    ready_at: float = 0.0
    stopped_because: str | None = None  # set when we killed it on purpose
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def to_child(self) -> int:
        assert self.proc.stdin is not None
        return self.proc.stdin.fileno()

    @property
    def from_child(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def kill(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            return self.proc.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            return None

    def end(self) -> str:
        """Why it is gone: our own reason, else its signal or exit code."""
        if self.stopped_because:
            self.kill()
            return self.stopped_because
        code: int | None
        try:
            code = self.proc.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:  # it closed its pipe but lives on
            code = self.kill()
        return describe_exit(code)

    def close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass


class VoiceProcess:
    """One Piper voice in a child process, restarted with back-off when it dies."""

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        *,
        threads: int = 0,
        espeak_voice: str | None = None,
        deadline_s: float = 20.0,
        load_deadline_s: float = LOAD_DEADLINE_S,
    ) -> None:
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise VoiceError(f"{self.path}: voice model not found")
        config_path = self.path.with_name(self.path.name + ".json")
        config = VoiceModel.from_file(config_path)
        self.config = _replace(config, espeak_voice=espeak_voice) if espeak_voice else config
        self.name = f"piper:{self.path.name.removesuffix('.onnx')}"
        self.sample_rate = self.config.sample_rate
        # The same identity as an in-process NeuralVoice: cached audio stays valid.
        self.identity = f"{self.name}:{self.path.stat().st_size}:{sha256_file(config_path)[:16]}"
        self.threads = threads
        self.espeak_voice = espeak_voice
        self.deadline_s = deadline_s
        self.load_deadline_s = load_deadline_s
        self.restarts = 0
        self._request = threading.Lock()  # one exchange on the pipes at a time
        self._guard = threading.Lock()  # the fields below
        self._child: _Child | None = None
        self._busy: _Child | None = None
        self._problem: str | None = "not started"
        self._failures = 0
        self._next_try = 0.0
        self._restarter: threading.Thread | None = None
        self._closed = threading.Event()
        self._missing: set[str] = set()

    @classmethod
    def start(cls, onnx_path: str | os.PathLike[str], **options: Any) -> VoiceProcess:
        """Start the child and wait until the model is loaded and warm; VoiceError says why not."""
        voice = cls(onnx_path, **options)
        child = voice._spawn()
        with voice._guard:
            voice._child, voice._problem = child, None
        return voice

    # -- the voice --------------------------------------------------------------
    def pieces(
        self, text: str, first_max: int = MAX_PIECE_PHONEMES, max_len: int = MAX_PIECE_PHONEMES
    ) -> list[list[str]]:
        reply, _ = self._ask({"op": "pieces", "text": text, "first_max": first_max, "max_len": max_len})
        return [[str(p) for p in piece] for piece in reply["pieces"]]

    def phonemes_to_ids(self, phonemes: list[str]) -> list[int]:
        """BOS, then each known phoneme followed by PAD, then EOS (as `NeuralVoice`)."""
        return phoneme_ids(phonemes, self.config.phoneme_id_map, missing=self._missing, voice=self.name)

    def ids_to_audio(self, ids: list[int], rate: float = 1.0, speaker_id: int | None = None) -> np.ndarray:
        reply, payload = self._ask({"op": "audio", "ids": list(ids), "rate": rate, "speaker_id": speaker_id})
        samples = np.frombuffer(payload, dtype=SAMPLE_DTYPE).astype(np.float32)
        if len(samples) != reply.get("samples"):
            raise VoiceError(f"{self.name}: the voice process sent {len(samples)} of {reply.get('samples')} samples")
        return samples

    def synthesize(self, text: str, rate: float = 1.0) -> np.ndarray:
        parts = [self.ids_to_audio(self.phonemes_to_ids(p), rate) for p in self.pieces(text)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    @property
    def pid(self) -> int | None:
        """The voice process's id while it runs."""
        with self._guard:
            return self._child.proc.pid if self._child is not None else None

    def child_rss_mb(self) -> float:
        """The child's peak resident memory, as it reports it."""
        reply, _ = self._ask({"op": "stats"})
        return float(reply["rss_mb"])

    def problem(self) -> str | None:
        """None while the child serves; else why it does not (no countdown: the station state stays put)."""
        with self._guard:
            if self._child is not None or self._problem is None:
                return None
            return f"{self._problem}; {'closed' if self._closed.is_set() else 'restarting it'}"

    @property
    def restart_delay_s(self) -> float:
        """The back-off before the next restart: 1, 2, 4 … s after consecutive failures, at most 5 min."""
        with self._guard:
            return self._delay()

    def terminate(self) -> None:
        """Stop the run in flight (past the caller's deadline): the child is killed and restarted."""
        with self._guard:
            child = self._busy
        if child is not None:
            child.stopped_because = "neural voice process stopped: no audio before the deadline"
            child.kill()

    def close(self) -> None:
        self._closed.set()
        with self._guard:
            child, self._child = self._child, None
        if child is None:
            return
        if self._request.acquire(timeout=EXIT_WAIT_S):
            try:
                write_message(child.to_child, {"op": "quit"})
                read_message(child.from_child, time.monotonic() + EXIT_WAIT_S)
            except (Closed, Late, OSError):
                pass
            finally:
                self._request.release()
        child.close_pipes()
        child.kill()

    # -- requests ---------------------------------------------------------------
    def _ask(self, meta: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        with self._request:
            with self._guard:
                child = self._child
                self._busy = child
            if child is None:
                raise VoiceError(f"{self.name} unavailable: {self.problem() or 'closed'}")
            try:
                write_message(child.to_child, meta)
                reply, payload = read_message(child.from_child, time.monotonic() + self.deadline_s)
            except Late:
                child.stopped_because = f"neural voice process did not answer within {self.deadline_s:g} s"
                raise VoiceError(self._lost(child)) from None
            except (Closed, OSError):
                raise VoiceError(self._lost(child)) from None
            finally:
                with self._guard:
                    self._busy = None
        if not reply.get("ok"):
            raise VoiceError(str(reply.get("error") or "the voice process failed"))
        return reply, payload

    def _lost(self, child: _Child) -> str:
        """Drop a dead or stuck child, schedule its restart; returns the reason in words."""
        why = child.end()
        reason = why if child.stopped_because else f"neural voice process died: {why}"
        child.close_pipes()
        lived = time.monotonic() - child.ready_at if child.ready_at else 0.0
        log.error("%s (%s, after %.0f s of service)", reason, self.name, lived)
        with self._guard:
            if self._child is child:
                self._child = None
            self._problem = reason
            self._failures = 1 if lived >= STABLE_S else self._failures + 1
        self._schedule_restart()
        return reason

    def _delay(self) -> float:
        return min(BACKOFF_FIRST_S * 2 ** max(0, self._failures - 1), BACKOFF_MAX_S)

    def _schedule_restart(self) -> None:
        with self._guard:
            if self._closed.is_set() or (self._restarter is not None and self._restarter.is_alive()):
                return
            self._next_try = time.monotonic() + self._delay()
            self._restarter = threading.Thread(target=self._restart_loop, name="voice-restart", daemon=True)
            self._restarter.start()

    def _restart_loop(self) -> None:
        while True:
            with self._guard:
                wait = max(0.0, self._next_try - time.monotonic())
            if self._closed.wait(wait):
                return
            try:
                child = self._spawn()
            except VoiceError as exc:
                with self._guard:
                    self._failures += 1
                    self._problem = f"restart failed: {exc}"
                    self._next_try = time.monotonic() + self._delay()
                log.error("%s; next try in %.0f s", self._problem, self._delay())
                continue
            with self._guard:
                if self._closed.is_set():
                    child.close_pipes()
                    child.kill()
                    return
                self._child, self._problem = child, None
                self.restarts += 1
            log.info("%s is back: neural voice process restarted (%d so far)", self.name, self.restarts)
            return

    # -- starting a child -------------------------------------------------------
    def _spawn(self) -> _Child:
        cmd = [sys.executable, "-m", CHILD_MODULE, str(self.path), "--threads", str(self.threads)]
        cmd += ["--deadline", f"{self.deadline_s:g}"]
        if self.espeak_voice:
            cmd += ["--espeak-voice", self.espeak_voice]
        child = _Child(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True))
        try:
            child.info = _await_ready(child, self.load_deadline_s + self.deadline_s)
        except VoiceError:
            child.close_pipes()
            child.kill()
            raise
        child.ready_at = time.monotonic()
        version = child.info.get("onnxruntime")
        log.info("%s ready in its own process (pid %d, onnxruntime %s)", self.name, child.proc.pid, version)
        return child


def _await_ready(child: _Child, deadline_s: float) -> dict[str, Any]:
    """Read stage reports until `ready`; a death is named by the stage it happened in."""
    deadline = time.monotonic() + deadline_s
    version = ""
    while True:
        try:
            meta, _ = read_message(child.from_child, deadline)
        except Late:
            child.stopped_because = f"neural voice process did not get ready within {deadline_s:g} s ({child.stage})"
            child.kill()
            raise VoiceError(child.stopped_because) from None
        except (Closed, OSError):
            ort = f" (onnxruntime {version})" if version else ""
            raise VoiceError(f"neural voice process died while {child.stage}{ort}: {child.end()}") from None
        version = str(meta.get("onnxruntime") or version)
        if "ok" in meta:
            if not meta["ok"]:
                raise VoiceError(str(meta.get("error")))
            return meta
        child.stage = str(meta.get("stage", child.stage))
