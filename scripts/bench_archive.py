#!/usr/bin/env python3
"""What the on-air archive costs: CPU of encoding as a fraction of real time, and bytes per minute of speech.

Vietnamese speech made by espeak-ng (repeated to `--seconds`) goes through
the archive exactly as the player hands it over (0.1 s blocks through the
tee, a real store, ffmpeg), as fast as the encoder takes it. The encoder's
CPU is ffmpeg's (user + system, from the kernel's accounting of children);
the station's side is this process's own CPU (the tee, the mailbox and the
thread feeding ffmpeg). Both are shown as a share of one core per second
of audio, for each codec.

    .venv/bin/python scripts/bench_archive.py --seconds 120
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from loaxa.archive import Archive
from loaxa.config import ArchiveSettings
from loaxa.store import Store, archived
from loaxa.testing.audio import read_wav

TEXT = (
    "Thông báo của ủy ban nhân dân xã về lịch tiêm phòng cho gia súc và gia cầm. "
    "Sáng thứ hai, cán bộ thú y đến từng thôn. Bà con nhốt gia súc để tiêm cho thuận tiện. "
    "Mọi thắc mắc xin liên hệ trưởng thôn. Xin cảm ơn bà con đã lắng nghe."
)
RATE = 22050


class _Discard:
    def write(self, samples: np.ndarray) -> None:
        pass

    def close(self) -> None:
        pass


def speech(root: Path, seconds: float) -> np.ndarray:
    wav = root / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "vi", "-w", str(wav), TEXT], check=True)
    samples, rate = read_wav(wav)
    assert rate == RATE, f"espeak-ng wrote {rate} Hz"
    reps = int(np.ceil(seconds * RATE / len(samples)))
    return np.tile(samples, reps)[: int(seconds * RATE)]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(root: Path, samples: np.ndarray, codec: str, kbps: int) -> str:
    store = Store(root / codec / "station.db")
    archive = Archive(
        ArchiveSettings(enabled=True, codec=codec, bitrate_kbps=kbps, min_free_mb=0, queue_s=600),  # type: ignore[arg-type]
        root / codec / "archive",
        store,
        ZoneInfo("Asia/Ho_Chi_Minh"),
        rate=RATE,
    )
    archive.start()
    child0, self0, wall0 = children_cpu(), time.process_time(), time.monotonic()
    tee = archive.tee(_Discard(), "bench", RATE)
    for i in range(0, len(samples), RATE // 10):
        tee.write(samples[i : i + RATE // 10])
    tee.close()
    archive.stop(timeout_s=600)
    child, own, wall = children_cpu() - child0, time.process_time() - self0, time.monotonic() - wall0
    (f,) = archived.oldest_first(store)
    store.close()
    audio_s = len(samples) / RATE
    return (
        f"{codec:>4} {kbps:>3} kb/s: {audio_s:.0f} s of speech encoded in {wall:.2f} s; "
        f"encoder CPU {child:.2f} s = {100 * child / audio_s:.2f} % of one core; "
        f"station side {100 * own / audio_s:.2f} %; "
        f"{f.bytes} bytes = {f.bytes / (audio_s / 60) / 1000:.0f} kB per minute"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="seconds of speech to encode")
    parser.add_argument("--kbps", type=int, default=24, help="Opus bitrate (MP3 uses 32)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        samples = speech(root, args.seconds)
        print(measure(root, samples, "opus", args.kbps))
        print(measure(root, samples, "mp3", 32))


if __name__ == "__main__":
    main()
