"""One engine, one process: `python -m loaxa.bench.child ENGINE VOICE TEXTFILE THREADS ESPEAK`.

Prints one JSON line: cold_start_s (start of this module to ready, warm-up
included), first_audio_s, total_s, audio_s, rss_mb (peak; for `ours` the sum of
this process and its neural voice process, also given apart).
Heavy imports happen inside the timed section on purpose: they are part of
what a cold daemon pays.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import wave  # noqa: E402
from pathlib import Path  # noqa: E402

WARM_UP = "xin chào"


def ours(voice: str, text: str, threads: int, espeak: str) -> dict[str, float]:
    """The station's own path: `Speaker` over the voice in its child process."""
    from loaxa.config import TextSettings, TtsSettings
    from loaxa.speech.pipeline import Speaker
    from loaxa.speech.voice_process import VoiceProcess

    piper = VoiceProcess.start(voice, threads=threads, espeak_voice=espeak)
    speaker = Speaker(piper, None, TtsSettings(threads=threads), TextSettings(), piper.sample_rate)
    sampler = _RssSampler([os.getpid(), piper.pid])
    ready = time.perf_counter()
    first, samples = None, 0
    for chunk in speaker.chunks(speaker.sentences(text)):
        first = first or time.perf_counter() - ready
        samples += len(chunk.samples)
    total = time.perf_counter() - ready
    together_mb = sampler.stop()
    child_mb = piper.child_rss_mb()
    piper.close()
    return {
        "cold_start_s": ready - STARTED,
        "first_audio_s": first or 0.0,
        "total_s": total,
        "audio_s": samples / piper.sample_rate,
        # The two peaks may not coincide: their sum is an upper bound of what the station holds.
        "child_rss_mb": child_mb,
        "together_rss_mb": together_mb,
    }


class _RssSampler:
    """The largest sum of the processes' resident sets, sampled every 10 ms (/proc)."""

    def __init__(self, pids: list[int | None]) -> None:
        import threading

        self.paths = [f"/proc/{pid}/status" for pid in pids if pid]
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            total = 0
            for path in self.paths:
                try:
                    with open(path, encoding="ascii") as status:
                        total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
                except (OSError, StopIteration):
                    pass
            self.peak_kb = max(self.peak_kb, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def piper_tts(voice: str, text: str, threads: int, espeak: str) -> dict[str, float]:
    from piper import PiperVoice

    piper = PiperVoice.load(voice)
    piper.config.espeak_voice = espeak
    with wave.open(io.BytesIO(), "wb") as sink:
        piper.synthesize_wav(WARM_UP, sink)
    ready = time.perf_counter()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        piper.synthesize_wav(text, wav)  # whole text in, whole file out: first audio = total
    total = time.perf_counter() - ready
    with wave.open(io.BytesIO(buffer.getvalue())) as wav:
        audio_s = wav.getnframes() / wav.getframerate()
    return {"cold_start_s": ready - STARTED, "first_audio_s": total, "total_s": total, "audio_s": audio_s}


def bare(voice: str, text: str, threads: int, espeak: str) -> dict[str, float]:
    """onnxruntime with default options over the ids piper-tts would feed it."""

    import numpy as np
    import onnxruntime as ort
    from piper.config import PiperConfig
    from piper.phoneme_ids import phonemes_to_ids
    from piper.phonemize_espeak import EspeakPhonemizer

    config = PiperConfig.from_dict(json.loads(Path(voice + ".json").read_text(encoding="utf-8")))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    session = ort.InferenceSession(voice, opts, providers=["CPUExecutionProvider"])
    phonemizer = EspeakPhonemizer()
    ids = [phonemes_to_ids(p, config.phoneme_id_map) for p in phonemizer.phonemize(espeak, text) if p]
    scales = np.array([config.noise_scale, config.length_scale, config.noise_w_scale], dtype=np.float32)

    def run(seq: list[int]) -> np.ndarray:
        feeds = {
            "input": np.array([seq], dtype=np.int64),
            "input_lengths": np.array([len(seq)], dtype=np.int64),
            "scales": scales,
        }
        return session.run(None, feeds)[0].reshape(-1)

    run(phonemes_to_ids(phonemizer.phonemize(espeak, WARM_UP)[0], config.phoneme_id_map))
    ready = time.perf_counter()
    first, samples = None, 0
    for seq in ids:
        samples += len(run(seq))
        first = first or time.perf_counter() - ready
    return {
        "cold_start_s": ready - STARTED,
        "first_audio_s": first or 0.0,
        "total_s": time.perf_counter() - ready,
        "audio_s": samples / config.sample_rate,
    }


ENGINES = {"ours": ours, "piper": piper_tts, "bare": bare}


def main(argv: list[str]) -> int:
    engine, voice, text_file, threads, espeak = argv
    result = ENGINES[engine](voice, Path(text_file).read_text(encoding="utf-8"), int(threads), espeak)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    if "child_rss_mb" in result:  # ours: the daemon's side plus its voice process
        result["parent_rss_mb"] = result["rss_mb"]
        result["rss_mb"] += result["child_rss_mb"]
    print(json.dumps({"engine": engine, **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
