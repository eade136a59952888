"""Recorded bulletins: download, hash check, cache, decode — against a real local HTTP server and ffmpeg."""

from __future__ import annotations

import functools
import hashlib
import os
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from audio_servers import FileServer, dominant_hz, tone_file
from loaxa import sources
from loaxa.download import ANY_ADDRESS
from loaxa.errors import CommandError
from loaxa.sources import SourceError, decode_audio, prune_cache, validate_audio_spec

# The test servers listen on loopback, which a station refuses unless told (security.allow_private_urls).
fetch_audio = functools.partial(sources.fetch_audio, addresses=ANY_ADDRESS)

RATE = 22050
MB = 1_000_000
GOOD_HASH = "a" * 64


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("tones")
    return {fmt: tone_file(folder, fmt, seconds=1.5).read_bytes() for fmt in ("wav", "mp3", "ogg")}


@pytest.fixture
def server(tones: dict[str, bytes]):
    with FileServer({f"tone.{fmt}": data for fmt, data in tones.items()}, slow_s=5.0) as srv:
        yield srv


def cache_entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_download_with_matching_hash_lands_in_content_addressed_cache(server, tones, tmp_path):
    cache = tmp_path / "cache"
    path = fetch_audio(server.url("tone.wav"), sha(tones["wav"]), cache, 50 * MB, 10)
    assert path == cache / sha(tones["wav"])
    assert path.read_bytes() == tones["wav"]
    assert cache_entries(cache) == [sha(tones["wav"])]


def test_uppercase_hash_is_accepted_and_cached_under_lowercase(server, tones, tmp_path):
    path = fetch_audio(server.url("tone.mp3"), sha(tones["mp3"]).upper(), tmp_path, 50 * MB, 10)
    assert path.name == sha(tones["mp3"])


def test_redirect_is_followed(server, tones, tmp_path):
    path = fetch_audio(server.url("redirect/tone.ogg"), sha(tones["ogg"]), tmp_path, 50 * MB, 10)
    assert path.read_bytes() == tones["ogg"]


def test_redirect_to_a_local_file_is_refused(server, tones, tmp_path):
    with pytest.raises(SourceError, match="redirected to a non-HTTP address"):
        fetch_audio(server.url("escape/tone.wav"), sha(tones["wav"]), tmp_path, 50 * MB, 10)
    assert cache_entries(tmp_path) == []


def test_hash_mismatch_is_refused_and_leaves_nothing_in_cache(server, tones, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(SourceError, match=f"sha256 mismatch: expected {GOOD_HASH}, got {sha(tones['wav'])}"):
        fetch_audio(server.url("tone.wav"), GOOD_HASH, cache, 50 * MB, 10)
    assert cache_entries(cache) == []


def test_declared_size_over_cap_is_refused_before_the_body(server, tones, tmp_path):
    with pytest.raises(SourceError, match="download larger than 0.001 MB"):
        fetch_audio(server.url("lying/tone.wav"), sha(tones["wav"]), tmp_path, 1000, 10)
    assert cache_entries(tmp_path) == []


def test_body_over_cap_without_content_length_is_cut_off(server, tones, tmp_path):
    with pytest.raises(SourceError, match="download larger than 0.01 MB"):
        fetch_audio(server.url("nolength/tone.wav"), sha(tones["wav"]), tmp_path, 10_000, 10)
    assert cache_entries(tmp_path) == []


def test_body_without_content_length_under_cap_is_fine(server, tones, tmp_path):
    path = fetch_audio(server.url("nolength/tone.wav"), sha(tones["wav"]), tmp_path, 50 * MB, 10)
    assert path.read_bytes() == tones["wav"]


def test_server_that_does_not_answer_is_no_http_answer_at_the_deadline(server, tones, tmp_path):
    # Issue 17: a silent port reads as a refused one (see test_trust_leaks), never "timed out".
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"^no HTTP answer from 127\.0\.0\.1$"):
        fetch_audio(server.url("slow/tone.wav"), sha(tones["wav"]), tmp_path, 50 * MB, 0.5)
    assert time.monotonic() - started < 0.5 + 1.0
    assert cache_entries(tmp_path) == []


def test_trickling_server_is_cut_at_the_overall_deadline(server, tones, tmp_path):
    # Every read succeeds within the socket timeout; only a whole-transfer deadline stops this.
    with pytest.raises(SourceError, match="timed out after 0.5 s"):
        fetch_audio(server.url("trickle/tone.wav"), sha(tones["wav"]), tmp_path, 50 * MB, 0.5)
    assert cache_entries(tmp_path) == []


def test_server_trickling_header_bytes_is_cut_at_the_overall_deadline(server, tones, tmp_path):
    # Status line, then one header byte every 0.1 s: the headers never end on their own.
    started = time.monotonic()
    with pytest.raises(SourceError, match="timed out after 1 s"):
        fetch_audio(server.url("dribble/tone.wav"), sha(tones["wav"]), tmp_path, 50 * MB, 1.0)
    assert time.monotonic() - started < 1.0 + 1.0
    assert cache_entries(tmp_path) == []


def test_missing_file_reports_http_status_and_host(server, tmp_path):
    with pytest.raises(SourceError, match=r"HTTP 404 from 127\.0\.0\.1"):
        fetch_audio(server.url("nothing.wav"), GOOD_HASH, tmp_path, 50 * MB, 10)
    assert cache_entries(tmp_path) == []


def test_unreachable_host_is_a_readable_error(server, tmp_path):
    url = server.url("tone.wav")
    server.stop()
    with pytest.raises(SourceError, match=r"^no HTTP answer from 127\.0\.0\.1$"):
        fetch_audio(url, GOOD_HASH, tmp_path, 50 * MB, 10)


def test_cached_file_is_reused_without_network(server, tones, tmp_path):
    url, digest = server.url("tone.wav"), sha(tones["wav"])
    first = fetch_audio(url, digest, tmp_path, 50 * MB, 10)
    server.stop()
    assert fetch_audio(url, digest, tmp_path, 50 * MB, 10) == first
    assert server.requests == 1


def test_corrupt_cache_entry_is_fetched_again(server, tones, tmp_path):
    digest = sha(tones["wav"])
    (tmp_path / digest).write_bytes(b"bit rot")
    path = fetch_audio(server.url("tone.wav"), digest, tmp_path, 50 * MB, 10)
    assert path.read_bytes() == tones["wav"]
    assert server.requests == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.wav"])
def test_non_http_urls_never_reach_the_network(url, tmp_path):
    with pytest.raises(SourceError, match="http:// or https://"):
        fetch_audio(url, GOOD_HASH, tmp_path, 50 * MB, 10)


def test_bad_hash_is_refused_before_any_download(server, tmp_path):
    with pytest.raises(SourceError, match="64 hexadecimal"):
        fetch_audio(server.url("tone.wav"), "abc", tmp_path, 50 * MB, 10)
    assert server.requests == 0


@pytest.mark.parametrize("fmt", ["wav", "mp3", "ogg"])
def test_each_format_decodes_to_mono_float32_tone_at_the_output_rate(fmt, tones, tmp_path):
    path = tmp_path / sha(tones[fmt])
    path.write_bytes(tones[fmt])  # recorded at 44.1 kHz: decoding must resample
    samples = decode_audio(path, RATE)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) / RATE == pytest.approx(1.5, abs=0.1)
    assert np.sqrt(np.mean(samples**2)) > 0.2  # a 0.5-amplitude sine has RMS 0.35
    assert dominant_hz(np.asarray(samples), RATE) == pytest.approx(440, abs=5)


def test_decoded_samples_are_cached_next_to_the_download(tones, tmp_path):
    path = tmp_path / sha(tones["mp3"])
    path.write_bytes(tones["mp3"])
    first = np.array(decode_audio(path, RATE))
    decoded = tmp_path / f"{path.name}.{RATE}.f32"
    assert decoded.stat().st_size == len(first) * 4
    path.write_bytes(b"not decoded again")  # a second decode of this would fail
    assert np.array_equal(decode_audio(path, RATE), first)


def test_file_that_is_not_audio_is_refused(tmp_path):
    path = tmp_path / "junk"
    path.write_text("<html>Sorry, this page has moved</html>")
    with pytest.raises(SourceError, match="not an audio file ffmpeg can decode"):
        decode_audio(path, RATE)
    assert cache_entries(tmp_path) == ["junk"]


def test_playlist_disguised_as_audio_cannot_open_other_files(tones, tmp_path):
    (tmp_path / "real.wav").write_bytes(tones["wav"])
    path = tmp_path / "playlist"
    path.write_text(f"#EXTM3U\n#EXTINF:1,\nfile://{tmp_path / 'real.wav'}\n")
    with pytest.raises(SourceError, match="not an audio file ffmpeg can decode"):
        decode_audio(path, RATE)


def test_empty_recording_is_refused(tmp_path):
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
    with pytest.raises(SourceError, match="no audio"):
        decode_audio(path, RATE)


def test_recording_longer_than_cap_is_refused(tones, tmp_path):
    path = tmp_path / "long"
    path.write_bytes(tones["ogg"])
    with pytest.raises(SourceError, match="longer than 0.0166667 minutes"):
        decode_audio(path, RATE, max_duration_s=1.0)
    assert cache_entries(tmp_path) == ["long"]


def test_prune_drops_least_recently_used_downloads_with_their_decodings(tmp_path):
    for age_h, name in ((3, "old"), (2, "kept"), (1, "new")):
        for suffix in ("", f".{RATE}.f32"):
            path = tmp_path / (name * 16 + suffix)
            path.write_bytes(b"x" * 1000)
            stamp = time.time() - age_h * 3600
            os.utime(path, (stamp, stamp))
    (tmp_path / ".part-crashed").write_bytes(b"x" * 10)
    os.utime(tmp_path / ".part-crashed", (time.time() - 7200, time.time() - 7200))
    (tmp_path / ".part-downloading").write_bytes(b"x" * 10)

    freed = prune_cache(tmp_path, max_bytes=2500, keep=frozenset({"kept" * 16}))
    assert cache_entries(tmp_path) == sorted([".part-downloading", "kept" * 16, f"{'kept' * 16}.{RATE}.f32"])
    assert freed == 4010


def test_cache_hit_counts_as_recent_use_for_pruning(server, tones, tmp_path):
    digest = sha(tones["wav"])
    (tmp_path / digest).write_bytes(tones["wav"])
    os.utime(tmp_path / digest, (0, 0))
    fetch_audio(server.url("tone.wav"), digest, tmp_path, 50 * MB, 10)
    assert (tmp_path / digest).stat().st_mtime > time.time() - 60


GOOD_URL = "https://province.example.vn/bulletins/b1.mp3"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("https://x/y.mp3", "must be an object"),
        ({"url": GOOD_URL}, "missing 'sha256'"),
        ({"url": GOOD_URL, "sha256": GOOD_HASH, "size": 3}, "unknown key 'size'"),
        ({"url": "file:///etc/passwd", "sha256": GOOD_HASH}, "http:// or https://"),
        ({"url": "http://", "sha256": GOOD_HASH}, "no host"),
        ({"url": "http://user:pw@x.vn/a.mp3", "sha256": GOOD_HASH}, "user name or password"),
        ({"url": "http://x.vn:99999/a.mp3", "sha256": GOOD_HASH}, "invalid port"),
        ({"url": "http://x.vn/bản tin.mp3", "sha256": GOOD_HASH}, "plain ASCII"),
        ({"url": "http://x.vn/" + "a" * 2100, "sha256": GOOD_HASH}, "longer than 2048"),
        ({"url": 42, "sha256": GOOD_HASH}, "non-empty string"),
        ({"url": GOOD_URL, "sha256": "g" * 64}, "64 hexadecimal"),
        ({"url": GOOD_URL, "sha256": None}, "64 hexadecimal"),
    ],
)
def test_malformed_audio_spec_is_rejected_with_reason(spec, reason):
    with pytest.raises(CommandError, match=reason):
        validate_audio_spec(spec)


def test_wellformed_audio_spec_passes():
    validate_audio_spec({"url": GOOD_URL, "sha256": GOOD_HASH.upper()})
    validate_audio_spec({"url": "http://10.0.0.5:8080/a.ogg?token=x", "sha256": GOOD_HASH})
