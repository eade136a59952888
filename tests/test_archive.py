"""The on-air archive (issue 13 item 6): what went to the amplifier, compressed, kept within its limits.

End to end, a station plays through the paced ALSA path (writes block as a
sound card's do) with `archive.enabled`: each on-air session becomes one
Opus file whose sound is what ALSA received, whose SHA-256 is in the store,
which `loaxa archive list` shows and `export` copies out, and the folder
stays within `archive.max_mb`, oldest first. Closer in, the `Archive` on a
real store and a real ffmpeg: an encoder that cannot keep up, a full disk
(a real tmpfs) and old files cost the archive, never the output.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from loaxa.archive import Archive
from loaxa.config import ArchiveSettings
from loaxa.player.output import NullSink
from loaxa.store import Store, archived
from loaxa.testing.disk import tmpfs
from loaxa.testing.station import StationProcess
from test_broadcast_onair import RATE, paced_station, sessions

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SHORT = "Xin chào bà con. Đây là đài truyền thanh xã."


def loaxa(station: StationProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loaxa", *args, "--config", str(station.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def decode(path: Path) -> np.ndarray:
    """The file's sound as float32 mono at the station's rate, decoded by ffmpeg."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(RATE), "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, dtype="<f4")


def envelope(samples: np.ndarray, frame_s: float = 0.05) -> np.ndarray:
    frame = int(frame_s * RATE)
    n = len(samples) // frame
    return np.sqrt((samples[: n * frame].reshape(n, frame) ** 2).mean(axis=1))


def test_each_on_air_session_is_archived_as_aired_listed_exported_and_rotated_at_max_mb(tmp_path, broker, operator):
    station = paced_station(
        tmp_path, broker, operator, archive__enabled=True, archive__max_mb=0.035, archive__min_free_mb=0
    )
    try:
        for n in (1, 2, 3):
            operator.send({"type": "bulletin", "id": f"tin-{n}", "text": SHORT})
            operator.wait_for(f"tin-{n}", "finished", 60)
        operator.wait_state(lambda st: st["archive"]["archived"] == 3, 30)
        aired = sessions(station.aired, 3)

        listed = loaxa(station, "archive", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        kept = [json.loads(line) for line in listed.stdout.splitlines()]
        folder = Path(station.config["storage"]["dir"]) / "archive"
        on_disk = sorted(p.name for p in folder.iterdir())
        assert sorted(f["file"] for f in kept) == on_disk  # the store and the folder agree
        # Rotation: within max_mb, the oldest gone first, the newest always kept.
        assert sum(f["bytes"] for f in kept) <= 0.035e6
        assert 1 <= len(kept) < 3
        assert [f["bulletin"] for f in kept] == [f"tin-{n}" for n in range(4 - len(kept), 4)]
        newest = kept[-1]
        assert newest["file"].endswith("-tin-3.opus") and newest["file"][:8] == datetime.now(TZ).strftime("%Y%m%d")

        # What went to the amplifier: the same length and the same sound as ALSA received.
        path = folder / newest["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == newest["sha256"]
        sound, heard = decode(path), aired[-1].samples
        assert abs(len(sound) - len(heard)) / RATE < 0.15, (len(sound) / RATE, len(heard) / RATE)
        a, b = envelope(sound), envelope(heard)
        n = min(len(a), len(b))
        assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.95
        assert abs(newest["seconds"] - len(heard) / RATE) < 0.15
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,channels", "-of", "json", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(probe.stdout)["streams"] == [{"codec_name": "opus", "channels": 1}]

        out = tmp_path / "export.opus"
        done = loaxa(station, "archive", "export", str(newest["id"]), str(out))
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == path.read_bytes() and newest["sha256"] in done.stdout
        gone = loaxa(station, "archive", "export", "999", str(out))
        assert gone.returncode == 1 and "no archived file 999" in gone.stderr
    finally:
        assert station.stop() == 0, station.log()


# -- the Archive on a real store and ffmpeg, around a null output -------------------------
class Counting:
    """An output that counts what it was given (as the amplifier would have it)."""

    def __init__(self) -> None:
        self.samples = 0

    def write(self, samples: np.ndarray) -> None:
        self.samples += len(samples)

    def close(self) -> None:
        pass


def speech_like(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def air(archive: Archive, label: str, seconds: float) -> tuple[Counting, float]:
    """One session through the archive's tee, in 0.1 s blocks as the player writes; the longest write."""
    output = Counting()
    tee = archive.tee(output, label, RATE)
    longest = 0.0
    samples = speech_like(seconds)
    for i in range(0, len(samples), RATE // 10):
        began = time.perf_counter()
        tee.write(samples[i : i + RATE // 10])
        longest = max(longest, time.perf_counter() - began)
    tee.close()
    return output, longest


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "var" / "station.db")
    yield s
    s.close()


def make_archive(store: Store, folder: Path, clock: list[float] | None = None, **settings: object) -> Archive:
    now = clock or [time.time()]
    return Archive(ArchiveSettings(enabled=True, min_free_mb=0, **settings), folder, store, TZ, rate=RATE,
                   clock=lambda: now[0])  # fmt: skip


def test_an_encoder_that_cannot_keep_up_drops_the_session_and_says_so_without_delaying_the_output(tmp_path, store):
    archive = make_archive(store, tmp_path / "archive", queue_s=1)
    # Not started yet: an encoder that does not take anything, as a wedged one.
    output, longest = air(archive, "tin-dai", 5.0)
    assert output.samples == 5 * RATE  # the output got every sample
    assert longest < 0.05  # and never waited for the archive
    archive.start()
    kept, _ = air(archive, "tin-sau", 1.0)  # within the mailbox: archived
    archive.stop()
    status = archive.status()
    assert (status["archived"], status["dropped"]) == (1, 1)
    assert [f.id for f in archived.oldest_first(store)] == ["tin-sau"]
    assert sorted(p.suffix for p in (tmp_path / "archive").iterdir()) == [".opus"]


def test_the_archive_fault_reports_the_session_dropped_and_clears_when_a_file_is_archived_again(tmp_path, store):
    archive = make_archive(store, tmp_path / "archive", queue_s=1)
    air(archive, "tin-dai", 3.0)  # overflows before the encoder starts
    archive.start()
    archive.stop()  # once the encoder has taken everything
    assert archive.fault() == "archive: tin-dai not archived: the encoder fell more than 1 s behind"
    assert archive.status()["since"] is not None
    archive.start()
    air(archive, "tin-sau", 0.5)
    archive.stop()
    assert archive.fault() is None and archive.status()["fault"] is None


def test_too_little_free_space_stops_archiving_and_airing_goes_on(tmp_path, store):
    archive = make_archive(store, tmp_path / "archive")
    archive.settings = archive.settings.model_copy(update={"min_free_mb": 1e12})  # more than any disk has
    archive.start()
    output, longest = air(archive, "tin-1", 2.0)
    archive.stop()
    assert output.samples == 2 * RATE and longest < 0.05
    fault = archive.fault()
    assert fault is not None and fault.startswith("archive: tin-1 not archived: disk full:") and "min_free_mb" in fault
    assert archived.oldest_first(store) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 kB tmpfs for the archive folder, unmounted afterwards."""
    with tmpfs(tmp_path / "archive", "size=256k") as where:
        yield where


def test_a_disk_that_fills_during_a_session_costs_that_file_only(tiny_disk, store):
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (256 * 1024 - 8 * 1024))  # ~8 kB left: less than 10 s of speech takes
    archive = make_archive(store, tiny_disk)
    archive.start()
    output, longest = air(archive, "tin-day", 10.0)
    archive.stop()
    assert output.samples == 10 * RATE and longest < 0.05
    fault = archive.fault()
    assert fault is not None and fault.startswith("archive: tin-day not archived: the encoder")
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]  # no half file left behind
    filler.unlink()  # space again: the next session is archived
    archive.start()
    air(archive, "tin-sau", 1.0)
    archive.stop()
    assert [f.id for f in archived.oldest_first(store)] == ["tin-sau"] and archive.fault() is None


def test_files_older_than_archive_days_are_deleted_oldest_first(tmp_path, store):
    now = [datetime(2026, 11, 1, 7, 0, tzinfo=UTC).timestamp()]
    archive = make_archive(store, tmp_path / "archive", clock=now, days=30)
    archive.start()
    air(archive, "cu", 0.5)
    now[0] += 20 * 86400
    air(archive, "giua", 0.5)
    now[0] += 15 * 86400  # "cu" is 35 days old now, "giua" 15
    air(archive, "moi", 0.5)
    archive.stop()
    kept = archived.oldest_first(store)
    assert [f.id for f in kept] == ["giua", "moi"]
    assert sorted(p.name for p in (tmp_path / "archive").iterdir()) == sorted(f.name for f in kept)
    assert kept[0].name.startswith("20261121-") and kept[0].name.endswith("-giua.opus")  # named by its start
    for f in kept:
        assert hashlib.sha256((tmp_path / "archive" / f.name).read_bytes()).hexdigest() == f.sha256


def test_mp3_is_available_too(tmp_path, store):
    archive = make_archive(store, tmp_path / "archive", codec="mp3", bitrate_kbps=32)
    archive.start()
    air(archive, "tin", 2.0)
    archive.stop()
    (f,) = archived.oldest_first(store)
    assert f.name.endswith("-tin.mp3") and abs(f.seconds - 2.0) < 0.01
    assert abs(len(decode(tmp_path / "archive" / f.name)) / RATE - 2.0) < 0.1


def test_a_sink_with_the_archive_still_describes_itself_as_the_sink(tmp_path, store):
    from loaxa.archive import ArchivingSink

    assert ArchivingSink(NullSink(), make_archive(store, tmp_path / "archive")).describe() == "null"


def test_bench_archive_as_the_docs_write_it():
    import re
    import shlex

    root = Path(__file__).resolve().parents[1]
    docs = (root / "docs" / "broadcast.md").read_text(encoding="utf-8")
    line = next(line.strip() for line in docs.splitlines() if "scripts/bench_archive.py --" in line)
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert f"`{line}`" in readme  # the README's figure comes from the same command
    done = subprocess.run(shlex.split(line), cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    opus = re.search(
        r"^opus  24 kb/s: .* encoder CPU [\d.]+ s = ([\d.]+) % of one core; .* = (\d+) kB per minute", done.stdout, re.M
    )
    assert opus, done.stdout
    assert float(opus[1]) > 0 and 50 < int(opus[2]) < 400  # 24 kb/s is 180 kB a minute, give or take the container
    assert re.search(r"^ mp3  32 kb/s: ", done.stdout, re.M), done.stdout
