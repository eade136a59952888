"""The fallback voice: espeak-ng Vietnamese through pyttsx3 in a child process.

A request that the child does not answer within the deadline kills it (a new
one starts on the next request); if pyttsx3 cannot start at all, the
`espeak-ng` command is called directly, which is the same engine. So is a
sentence for which pyttsx3 wrote no file, or one too short to hold the
sentence: the listener hears it either way, never a gap.

The child's files go to one folder per voice, made when first needed and
removed at close; folders left by a process that died are removed by the
next voice that starts.
"""

from __future__ import annotations

import io
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import wave
from pathlib import Path

import numpy as np

from loaxa.errors import VoiceError
from loaxa.pcm import from_int16_bytes

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050
BASE_WPM = 170
MIN_S_PER_CHAR = 0.02  # espeak-ng reads Vietnamese at ~0.07 s a character; far less means a cut file
TMP_PREFIX = "loaxa-espeak-"


class EspeakVoice:
    """`espeak:vi` (also `espeak:vi-vn-x-central`, `espeak:vi-vn-x-south`)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, voice: str = "vi", timeout_s: float = 15.0) -> None:
        self.voice = voice
        self.name = f"espeak:{voice}"
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._use_command = False
        self._tmp: Path | None = None

    def synthesize(self, text: str, rate: float = 1.0) -> np.ndarray:
        if not text.strip():
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            if not self._use_command:
                try:
                    return self._via_worker(text, rate)
                except _WorkerUnavailable as exc:
                    log.warning("pyttsx3 cannot run (%s); calling espeak-ng directly", exc)
                    self._use_command = True
            return self._via_command(text, rate)

    def close(self) -> None:
        with self._lock:
            self._stop_worker()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    # -- pyttsx3 in a child -------------------------------------------------
    def _via_worker(self, text: str, rate: float) -> np.ndarray:
        proc = self._worker()
        path = self._folder() / "out.wav"
        path.unlink(missing_ok=True)
        request = {"text": text, "path": str(path), "voice": self.voice, "rate": rate}
        try:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(request, ensure_ascii=False) + "\n").encode())
            proc.stdin.flush()
            reply = self._read_reply(proc, self.timeout_s)
        except (OSError, VoiceError):
            self._stop_worker()
            raise
        if reply.get("ok"):
            samples = _read_wav(path.read_bytes())
            if len(samples) >= MIN_S_PER_CHAR * len(text) / max(rate, 0.5) * SAMPLE_RATE:
                return samples
            problem = f"pyttsx3 wrote only {len(samples) / SAMPLE_RATE:.2f} s for {len(text)} characters"
        else:
            problem = str(reply.get("error"))
        log.info("%s; this sentence goes through the espeak-ng command", problem)
        return self._via_command(text, rate)

    def _folder(self) -> Path:
        if self._tmp is None:
            _remove_orphans()
            self._tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
        return self._tmp

    def _worker(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "loaxa.speech.espeak_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            hello = self._read_reply(self._proc, 10.0)
        except VoiceError as exc:
            self._stop_worker()
            raise _WorkerUnavailable(str(exc)) from None
        if not hello.get("ok"):
            self._stop_worker()
            raise _WorkerUnavailable(hello.get("error", "no greeting"))
        return self._proc

    def _read_reply(self, proc: subprocess.Popen[bytes], timeout_s: float) -> dict:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            self._stop_worker()
            raise VoiceError(f"espeak-ng did not answer within {timeout_s:g} s; restarted it")
        line = proc.stdout.readline()
        if not line:
            self._stop_worker()
            raise VoiceError("espeak-ng worker exited")
        return json.loads(line)

    def _stop_worker(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    # -- the espeak-ng command ----------------------------------------------
    def _via_command(self, text: str, rate: float) -> np.ndarray:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise VoiceError("espeak-ng is not installed (apt install espeak-ng)")
        args = [exe, "-v", self.voice, "-s", str(int(BASE_WPM * rate)), "--stdout"]
        try:
            out = subprocess.run(args, input=text.encode(), capture_output=True, timeout=self.timeout_s, check=True)
        except subprocess.TimeoutExpired:
            raise VoiceError(f"espeak-ng did not finish within {self.timeout_s:g} s") from None
        except subprocess.CalledProcessError as exc:
            raise VoiceError(f"espeak-ng failed: {exc.stderr.decode(errors='replace').strip()}") from None
        return _read_wav(out.stdout)


class _WorkerUnavailable(Exception):
    pass


def _remove_orphans() -> None:
    """Folders of voices whose process is gone (killed, or never closed its voice)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        pid = folder.name.removeprefix(TMP_PREFIX).split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _read_wav(data: bytes) -> np.ndarray:
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if wav.getsampwidth() != 2:
                raise VoiceError("espeak-ng wrote an unexpected sample width")
            frames = wav.readframes(wav.getnframes())
            channels = wav.getnchannels()
    except (wave.Error, EOFError) as exc:
        # espeak-ng --stdout writes a header with an unknown length; read it by hand
        if data[:4] != b"RIFF" or len(data) < 44:
            raise VoiceError(f"espeak-ng wrote no audio: {exc}") from None
        frames, channels = data[44:], 1
    samples = from_int16_bytes(frames)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples
