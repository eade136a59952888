"""Recorded audio is fetched and decoded off the player's thread, within the disk it is given.

Regressions guarded: the player waited on the network (a server trickling
header bytes held `AudioSource.prepare` for the whole download); a 3-hour
recording was downloaded and decoded to hundreds of MB before the
120-minute limit refused it; decoded audio could grow the cache past its cap.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from audio_servers import DiskPeak, FileServer, dominant_hz, tone, tone_file, write_wav
from loaxa.content import Audio
from loaxa.download import ANY_ADDRESS
from loaxa.sources import NotReady, SourceError, decode_audio
from loaxa.sources.fetcher import Fetcher, Pending, QueueFull, Ready
from loaxa.sources.recorded import decoded_bytes
from loaxa.sources.registry import AudioSource
from loaxa.testing.audio import read_wav, voiced_seconds, wait_for_files
from loaxa.testing.station import station_config

RATE = 22050
MB = 1_000_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_wav(tmp_path_factory.mktemp("wav") / "t.wav", tone(1.0, 550.0)).read_bytes()


class Woken:
    """Counts `on_ready` calls; `wait` blocks until there was one."""

    def __init__(self) -> None:
        self.calls = 0
        self._event = threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        self._event.set()

    def wait(self, timeout_s: float = 20.0) -> None:
        assert self._event.wait(timeout_s), "on_ready was never called"
        self._event.clear()


def source(tmp_path: Path, **kwargs) -> AudioSource:
    kwargs.setdefault("max_bytes", 50 * MB)
    kwargs.setdefault("addresses", ANY_ADDRESS)  # the test servers are on loopback
    return AudioSource(tmp_path / "audio", rate=RATE, **kwargs)


def test_prepare_returns_at_once_while_a_server_trickles_headers(tmp_path, wav):
    # The fault: the player's thread sat in the download while the server sent one header byte every 20 s.
    with FileServer({"t.wav": wav}, drip_s=20.0) as server:
        audio = source(tmp_path, timeout_s=60.0)
        try:
            content = Audio(url=server.url("dribble/t.wav"), sha256=sha(wav))
            started = time.monotonic()
            with pytest.raises(NotReady, match=r"still being fetched from 127\.0\.0\.1"):
                audio.prepare(content)
            with pytest.raises(NotReady):
                audio.prepare(content)  # asking again does not fetch again
            assert time.monotonic() - started < 0.2
            assert not audio.ready(content)
        finally:
            audio.close(timeout_s=0)


def test_the_pool_runs_two_fetches_at_once_and_queues_a_bounded_number(tmp_path):
    running: list[str] = []
    started, release = threading.Semaphore(0), threading.Event()

    def job(url: str, sha: str) -> Path:
        running.append(sha)
        started.release()
        release.wait(20)
        return tmp_path / sha

    fetcher = Fetcher(job, workers=2, queue_size=1)
    for name in ("a", "b"):
        assert isinstance(fetcher.request(f"http://x/{name}", name), Pending)
        assert started.acquire(timeout=20)  # taken by a worker: the queue is empty again
    assert isinstance(fetcher.request("http://x/c", "c"), Pending)  # waits in the queue
    assert isinstance(fetcher.request("http://x/a", "a"), Pending)  # already running: not queued again
    with pytest.raises(QueueFull):
        fetcher.request("http://x/d", "d")
    release.set()
    assert fetcher.wait("c", 20) == Ready(tmp_path / "c")
    assert sorted(running) == ["a", "b", "c"]
    fetcher.close()


def test_fetched_on_receipt_ready_for_prepare_and_the_waiter_is_woken(tmp_path, wav):
    woken = Woken()
    with FileServer({"t.wav": wav}) as server:
        audio = source(tmp_path, on_ready=woken)
        content = Audio(url=server.url("t.wav"), sha256=sha(wav))
        audio.fetch_ahead(content)
        audio.fetch_ahead(content)  # the same sha256 again: one download
        woken.wait()
        assert audio.ready(content)
        samples = audio.prepare(content).samples
        assert isinstance(samples, np.memmap)
        assert len(samples) == pytest.approx(RATE, abs=RATE * 0.01)
        assert dominant_hz(np.asarray(samples), RATE) == pytest.approx(550, abs=5)
        assert server.requests == 1
        audio.close()


def test_a_failed_fetch_is_remembered_then_tried_again(tmp_path, wav):
    woken = Woken()
    with FileServer({"t.wav": wav}) as server:
        audio = source(tmp_path, on_ready=woken, retry_after_s=3600)
        content = Audio(url=server.url("t.wav"), sha256="0" * 64)
        with pytest.raises(NotReady):
            audio.prepare(content)
        woken.wait()
        for _ in range(3):  # the player looking again costs no download
            with pytest.raises(SourceError, match="sha256 mismatch") as failed:
                audio.prepare(content)
            assert not isinstance(failed.value, NotReady)
        assert server.requests == 1
        audio.fetcher.retry_after_s = 0  # the while has passed
        with pytest.raises(NotReady):
            audio.prepare(content)
        woken.wait()
        assert server.requests == 2
        audio.close()


def test_a_failure_is_remembered_for_its_url_only_so_a_corrected_url_is_fetched_at_once(tmp_path, wav):
    """An operator who resends a recording from the right URL is not answered with the old URL's failure."""
    woken = Woken()
    digest = sha(wav)
    with FileServer({"t.wav": wav}) as server:
        audio = source(tmp_path, on_ready=woken, retry_after_s=3600)
        wrong = Audio(url=server.url("missing.wav"), sha256=digest)
        with pytest.raises(NotReady):
            audio.prepare(wrong)
        woken.wait()
        with pytest.raises(SourceError, match="404"):
            audio.prepare(wrong)
        right = Audio(url=server.url("t.wav"), sha256=digest)
        with pytest.raises(NotReady):
            audio.prepare(right)
        woken.wait()
        audio.prepare(right).close()
        audio.close()


def test_wait_blocks_until_ready_for_callers_without_a_player(tmp_path, wav):
    path = tmp_path / "local.wav"
    path.write_bytes(wav)
    audio = source(tmp_path)
    try:
        samples = audio.wait(audio.admit(path), timeout_s=60).samples
    finally:
        audio.close()
    assert len(samples) == pytest.approx(RATE, abs=RATE * 0.01)


def test_loaxa_play_without_a_daemon_waits_for_the_decoding(tmp_path, wav):
    path = tmp_path / "local.wav"
    path.write_bytes(wav)
    out = tmp_path / "aired"
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(station_config(tmp_path, 1883, f"wav:{out}")))
    result = subprocess.run(
        [sys.executable, "-m", "loaxa", "play", "--no-chime", "--config", str(config), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    [aired] = wait_for_files(out, 1)
    samples, rate = read_wav(aired)
    assert 0.8 < voiced_seconds(samples, rate, threshold=0.1) < 1.2


def chained_ogg(folder: Path, first_s: float, last_s: float) -> Path:
    """Two Ogg streams end to end: the header (the last page) tells only the last one's length."""
    first, last = tone_file(folder, "ogg", seconds=first_s), tone_file(folder, "ogg", seconds=last_s, freq=660)
    chained = folder / "chained.ogg"
    chained.write_bytes(first.read_bytes() + last.read_bytes())
    return chained


def test_recording_longer_than_the_limit_is_refused_from_its_header_before_decoding(tmp_path):
    path = tone_file(tmp_path, "mp3", seconds=3.0)
    # A decoding would need this ffmpeg, which does not exist: the refusal comes first, from ffprobe.
    with pytest.raises(SourceError, match="recording longer than 0.0333333 minutes"):
        decode_audio(path, RATE, max_duration_s=2.0, ffmpeg="/nonexistent/ffmpeg")
    assert not list(tmp_path.glob("*.f32"))


def test_decoding_past_the_limit_is_stopped_as_it_goes(tmp_path):
    path = chained_ogg(tmp_path, first_s=30.0, last_s=1.0)  # the header says 1 s; there are 31
    limit = decoded_bytes(3.0 + 1, RATE)
    with DiskPeak(tmp_path) as disk, pytest.raises(SourceError, match="recording longer than 0.05 minutes"):
        decode_audio(path, RATE, max_duration_s=3.0)
    sources = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert disk.peak <= sources + limit  # never the 31 s of samples (2.7 MB)
    assert sorted(p.suffix for p in tmp_path.iterdir() if p.name.startswith(".part-")) == []


def test_recording_that_decodes_larger_than_the_cache_is_refused(tmp_path):
    long = write_wav(tmp_path / "long.wav", tone(30.0))  # 1.3 MB, 2.6 MB decoded
    audio = source(tmp_path, cache_max_bytes=2 * MB)
    content = audio.admit(long)
    with pytest.raises(SourceError, match=r"decodes to 3 MB, more than the audio cache holds \(2 MB"):
        audio.wait(content, timeout_s=60)
    audio.close()
    assert list(audio.cache_dir.iterdir()) == []  # neither samples nor the refused download


def test_cache_with_a_new_decoding_stays_under_its_cap(tmp_path):
    audio = source(tmp_path, cache_max_bytes=3 * MB)
    old = audio.admit(write_wav(tmp_path / "old.wav", tone(15.0, 330.0)))  # 0.66 MB + 1.32 MB decoded
    audio.wait(old, timeout_s=60)
    new = audio.admit(write_wav(tmp_path / "new.wav", tone(10.0, 550.0)))  # 0.44 MB + 0.88 MB decoded
    with DiskPeak(audio.cache_dir) as disk:
        samples = audio.wait(new, timeout_s=60).samples
    audio.close()
    assert dominant_hz(np.asarray(samples[:RATE]), RATE) == pytest.approx(550, abs=5)
    assert disk.peak <= 3 * MB  # the old one went before the new decoding was written, not after
    assert not list(audio.cache_dir.glob(f"{old.sha256}*"))


def test_three_hour_recording_is_refused_before_a_byte_is_decoded(tmp_path):
    # The fault: 3 hours were decoded (hundreds of MB in the audio folder) before the 120-minute limit said no.
    long = tmp_path / "long.flac"  # silence compresses to 2 MB: a 3-hour file made in a second
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono"]
    subprocess.run([*cmd, "-t", "10800", "-c:a", "flac", str(long)], check=True)
    audio = source(tmp_path, cache_max_bytes=1024 * MB)
    content = audio.admit(long)
    with DiskPeak(audio.cache_dir) as disk, pytest.raises(SourceError, match="recording longer than 120 minutes"):
        audio.wait(content, timeout_s=60)
    audio.close()
    assert disk.peak <= long.stat().st_size
    assert list(audio.cache_dir.iterdir()) == []
