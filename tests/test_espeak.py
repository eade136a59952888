"""The espeak-ng fallback voice: never a gap for a file pyttsx3 did not finish, no folders left behind.

pyttsx3's espeak driver writes its WAV inside a synthesis callback, and on a
slow or loaded CPU `runAndWait` can return with no file yet (the
FileNotFoundError of the first sentence after start) or a file without its
last samples. The worker checks the file before it answers; the voice then
speaks that sentence through the `espeak-ng` command instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from loaxa.speech.espeak import TMP_PREFIX, EspeakVoice
from loaxa.speech.espeak_worker import SETTLE_S, _check


def _wav(path: Path, frames: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(22050)
        wav.writeframes(np.zeros(frames, "<i2").tobytes())


def test_the_worker_says_so_when_pyttsx3_wrote_no_file(tmp_path: Path) -> None:
    t0 = time.monotonic()
    answer = _check(str(tmp_path / "out.wav"))
    assert answer == {"ok": False, "error": "pyttsx3 wrote no usable audio: no file was written"}
    assert time.monotonic() - t0 < SETTLE_S + 0.5


def test_the_worker_rejects_a_file_cut_short_and_accepts_a_complete_one(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    _wav(path, 22050)
    assert _check(str(path)) == {"ok": True, "frames": 22050}
    with open(path, "r+b") as f:  # the header promises a second the data does not have
        f.truncate(44 + 1000)
    answer = _check(str(path))
    assert answer["ok"] is False
    assert "pyttsx3 wrote no usable audio" in str(answer["error"])


def test_every_sentence_is_spoken_in_full_even_right_after_start() -> None:
    """Fresh voices, first sentence each: the case that failed on slow CPUs."""
    for _ in range(3):
        voice = EspeakVoice("vi")
        try:
            samples = voice.synthesize("Xin chào bà con.")
        finally:
            voice.close()
        assert len(samples) > 0.4 * voice.sample_rate  # about a second of speech


def test_a_closed_voice_leaves_no_folder_and_a_dead_process_folder_is_removed() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{int(dead.stdout)}-"))
    voice = EspeakVoice("vi")
    voice.synthesize("Một.")
    mine = [p for p in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{os.getpid()}-*")]
    assert mine, "the voice works in a folder named after its process"
    voice.close()
    assert not any(p.exists() for p in mine)
    assert not orphan.exists()
