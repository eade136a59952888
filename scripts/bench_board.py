#!/usr/bin/env python3
"""Gaps in speech on a slow board: the station's speech path under a CPU quota.

A slow board is imitated with a cgroup v1 CPU quota (root needed) calibrated
so that the bare onnxruntime loop (1 thread, `loaxa.bench.child bare`) runs
at a measured real-time factor: 0.8 (a Pi 4 core, Piper medium) and 1.6 (a
board half as fast). At each speed (unthrottled, then each quota) the voice
process runs in the cgroup and `Speaker.chunks` feeds a consumer paced at the
sample rate (`loaxa.bench.playout`); the start delay and every gap are printed.

    .venv/bin/python scripts/bench_board.py                      # calibrate, then measure
    .venv/bin/python scripts/bench_board.py --quotas 11600,5800  # known quotas: measure only
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from loaxa.bench.playout import Playout, play_paced
from loaxa.bench.runner import default_voice
from loaxa.bench.text import BULLETIN
from loaxa.config import TextSettings, TtsSettings
from loaxa.speech.normalize import normalize
from loaxa.speech.pipeline import Speaker
from loaxa.speech.voice_process import VoiceProcess

CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
TARGETS = (("Pi 4 core", 0.8), ("2x slower", 1.6))
TOLERANCE = 0.05  # calibrated when the measured real-time factor is within 5 % of the target


class Throttle:
    """One cgroup v1 CPU group; every process put in it is moved back on close."""

    def __init__(self, name: str = "loaxa-slow") -> None:
        self.path = CPU / name
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        self.pids: set[int] = set()

    def quota(self, quota_us: int) -> None:
        (self.path / "cpu.cfs_quota_us").write_text(str(quota_us))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))
        self.pids.add(pid)

    def release(self, pid: int) -> None:
        try:
            (CPU / "cgroup.procs").write_text(str(pid))
        except OSError:  # it has exited
            pass
        self.pids.discard(pid)

    def close(self) -> None:
        for pid in list(self.pids):
            self.release(pid)
        for line in (self.path / "cgroup.procs").read_text().split():  # anything a child started
            self.release(int(line))
        self.path.rmdir()


def bare_rtf(throttle: Throttle | None, voice: Path, text_file: Path) -> float:
    """Seconds of synthesis per second of audio of the bare onnxruntime loop, one thread."""
    cmd = [sys.executable, "-m", "loaxa.bench.child", "bare", str(voice), str(text_file), "1", "vi"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    if throttle is not None:
        throttle.add(proc.pid)  # its session load is throttled too, but not timed
    out, _ = proc.communicate(timeout=900)
    if throttle is not None:
        throttle.release(proc.pid)
    if proc.returncode != 0:
        raise SystemExit(f"bare loop failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["total_s"]) / float(result["audio_s"])


def calibrate(throttle: Throttle, voice: Path, text_file: Path, target: float, guess_us: int) -> tuple[int, float]:
    """The quota at which the bare loop runs at `target` (measured: a few rounds of proportional steps)."""
    quota = guess_us
    for _ in range(5):
        throttle.quota(quota)
        rtf = bare_rtf(throttle, voice, text_file)
        print(f"  quota {quota} us: bare loop real-time factor {rtf:.3f} (target {target})", flush=True)
        if abs(rtf / target - 1) <= TOLERANCE:
            return quota, rtf
        quota = max(1000, round(quota * rtf / target))
    return quota, rtf


def bulletin(speaker: Speaker) -> Playout:
    return play_paced(speaker.chunks(speaker.sentences(BULLETIN)))


def report(label: str, n: int, result: Playout, speaker: Speaker) -> dict[str, object]:
    pace = getattr(speaker, "pace", None)
    learned = pace.describe() if pace is not None else ""
    print(
        f"  {label}, bulletin {n}: start delay {result.start_delay_s:.2f} s, {len(result.gaps)} gaps,"
        f" {result.gap_total_s:.2f} s in gaps (longest {result.longest_gap_s:.2f} s),"
        f" {result.audio_s:.1f} s speech + {result.pauses_s:.1f} s pauses, on air {result.wall_s:.1f} s {learned}",
        flush=True,
    )
    for gap in result.gaps:
        print(f"      gap of {gap.gap_s:.2f} s at {gap.at_s:.1f} s, before chunk of sentence {gap.index}")
    return {
        "speed": label,
        "bulletin": n,
        "start_delay_s": round(result.start_delay_s, 3),
        "gaps": [[round(g.at_s, 2), round(g.gap_s, 3)] for g in result.gaps],
        "gap_total_s": round(result.gap_total_s, 3),
        "audio_s": round(result.audio_s, 2),
        "pauses_s": round(result.pauses_s, 2),
        "wall_s": round(result.wall_s, 2),
    }


def measure(label: str, throttle: Throttle | None, quota: int | None, voice: Path, bulletins: int) -> list[dict]:
    piper = VoiceProcess.start(voice, threads=1, espeak_voice="vi", deadline_s=120.0)
    rows = []
    try:
        if throttle is not None and quota is not None and piper.pid is not None:
            throttle.quota(quota)
            throttle.add(piper.pid)  # loaded at full speed; synthesis is what a slow board slows
        tts = TtsSettings(threads=1, deadline_s=120.0)
        speaker = Speaker(piper, None, tts, TextSettings(), piper.sample_rate)
        before = os.times()
        for n in range(1, bulletins + 1):
            rows.append(report(label, n, bulletin(speaker), speaker))
        used = os.times()
        own = (used.user - before.user) + (used.system - before.system)
        print(f"  (this process, unthrottled: {own:.1f} s of CPU for levelling, resampling and pacing)")
    finally:
        pid = piper.pid
        piper.close()
        if throttle is not None and pid is not None:
            throttle.release(pid)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotas", help="PI4,SLOW quotas in us per 100 ms: skip the calibration")
    parser.add_argument("--bulletins", type=int, default=2, help="bulletins per speed (the speaker learns)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it writes a cgroup under /sys/fs/cgroup/cpu")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the cgroup is removed on the way out
    voice = default_voice()
    rows: list[dict] = []
    throttle = Throttle()
    try:
        with tempfile.TemporaryDirectory(prefix="loaxa-board-") as tmp:
            text_file = Path(tmp) / "bulletin.txt"
            text_file.write_text(normalize(BULLETIN), encoding="utf-8")
            quotas: list[tuple[str, int, float | None]] = []
            if args.quotas:
                quotas = [(n, int(q), None) for (n, _), q in zip(TARGETS, args.quotas.split(","), strict=True)]
            else:
                free = bare_rtf(None, voice, text_file)
                print(f"unthrottled bare loop, 1 thread: real-time factor {free:.3f}", flush=True)
                guess = round(PERIOD_US * free / TARGETS[0][1])
                for name, target in TARGETS:
                    print(f"calibrating {name} (real-time factor {target}):", flush=True)
                    quota, rtf = calibrate(throttle, voice, text_file, target, guess)
                    quotas.append((name, quota, rtf))
                    guess = round(quota * TARGETS[0][1] / TARGETS[-1][1])
            for name, quota, rtf in quotas:
                measured = f", bare loop {rtf:.3f}" if rtf is not None else ""
                print(f"quota for {name}: {quota} us per {PERIOD_US} us{measured}")
            print("speech path, real-time consumer:", flush=True)
            rows += measure("unthrottled", None, None, voice, args.bulletins)
            for name, quota, _ in quotas:
                rows += measure(f"{name} (quota {quota})", throttle, quota, voice, args.bulletins)
    finally:
        throttle.close()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
