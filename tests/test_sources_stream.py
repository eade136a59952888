"""Live stream relay against a real local Icecast-like server and a real ffmpeg."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from audio_servers import FileServer, StreamServer, dominant_hz, ffmpeg_children, tone_file
from loaxa.content import Stream
from loaxa.download import ANY_ADDRESS
from loaxa.errors import CommandError
from loaxa.sources import NotReady, SourceError, stream, validate_stream_spec
from loaxa.sources.stream_ahead import StreamSource

# The test servers listen on loopback, which a station refuses unless told (security.allow_private_urls).
StreamRelay = functools.partial(stream.StreamRelay, addresses=ANY_ADDRESS)

RATE = 22050


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tone_file(tmp_path_factory.mktemp("clip"), "mp3", seconds=1.0, rate=RATE).read_bytes()


def play(relay: StreamRelay) -> Iterator[np.ndarray]:
    """Consume blocks at the pace of a sound card, as the player does."""
    start = time.monotonic()
    played_s = 0.0
    for block in relay:
        yield block
        played_s += len(block) / RATE
        time.sleep(max(0.0, start + played_s - 0.05 - time.monotonic()))


def loud(block: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(block**2))) > 0.1


def test_relay_gives_the_stream_as_float32_blocks_and_ends_on_time(clip):
    with StreamServer(clip, 1.0) as server:
        relay = StreamRelay(server.url("live"), 2.0, RATE, block_s=0.1)
        blocks = list(play(relay))
    assert all(b.dtype == np.float32 and b.shape == (2205,) for b in blocks)
    audio = np.concatenate([b for b in blocks if loud(b)])
    assert len(audio) / RATE >= 1.0
    assert dominant_hz(audio, RATE) == pytest.approx(440, abs=5)
    assert relay.reconnects == 0
    assert relay.audio_s == pytest.approx(len(audio) / RATE, abs=0.01)
    assert ffmpeg_children() == []


def test_dropped_connection_is_reconnected_and_audio_continues(clip):
    with StreamServer(clip, 1.0, drop_after_s=0.6) as server:
        relay = StreamRelay(server.url("live"), 3.0, RATE, reconnect_s=0.2)
        after_reconnect = [b for b in play(relay) if relay.reconnects >= 1]
        connections = server.requests
    # every connection after the first is a counted reconnect; the last counted one may be cut by the
    # end of the relay before its ffmpeg reached the server (seen on a loaded machine: 8 == 8 + 1)
    assert relay.reconnects >= 1 and relay.reconnects <= connections <= relay.reconnects + 1
    assert any(loud(b) for b in after_reconnect)
    assert ffmpeg_children() == []


def test_stalled_stream_gives_silence_then_reconnects(clip):
    # Each connection sends 1.5 s at once, then nothing: the relay has 1.5 s
    # buffered, and the stall (2 s) plus the reconnect outlast it.
    with StreamServer(clip, 1.0, drop_after_s=1.5, stall=True) as server:
        relay = StreamRelay(server.url("live"), 4.0, RATE, reconnect_s=0.2, stall_s=2.0, prebuffer_s=0.1)
        kinds = ["audio" if loud(b) else "silence" for b in play(relay)]
    assert relay.reconnects >= 1
    assert relay.silence_s > 0
    assert relay.last_error == "127.0.0.1 sent nothing for 2 s"
    first_silence = kinds.index("silence", kinds.index("audio"))
    assert "audio" in kinds[first_silence:]  # sound came back after the stall
    assert ffmpeg_children() == []


def test_stop_ends_the_relay_at_once_and_kills_ffmpeg(clip):
    with StreamServer(clip, 1.0) as server:
        relay = StreamRelay(server.url("live"), 600.0, RATE)
        seen_ffmpeg: list[int] = []

        def interrupt() -> None:
            seen_ffmpeg.extend(ffmpeg_children())
            relay.stop()

        timer = threading.Timer(1.0, interrupt)
        timer.start()
        blocks = list(play(relay))
        timer.join()
    assert seen_ffmpeg  # the check below can fail
    assert ffmpeg_children() == []
    assert len(blocks) < 100  # far from the 600 s asked for
    assert list(relay) == []


def test_a_stream_that_never_gives_audio_is_failed_with_the_reason_within_its_first_seconds(clip):
    """Issue 17, a dead stream is not a success: a 404 ends the relay after `first_audio_s`, saying why."""
    with FileServer({}) as server:
        started = time.monotonic()
        relay = StreamRelay(server.url("missing.mp3"), 30.0, RATE, reconnect_s=0.2, first_audio_s=1.0)
        blocks = list(play(relay))
        took = time.monotonic() - started
        tries = server.requests
    assert not any(b.any() for b in blocks)
    assert took < 1.0 + 2.0  # not the 30 s asked for
    assert relay.failed == "HTTP 404 from 127.0.0.1" and not relay.has_audio
    assert relay.audio_s == 0 and relay.reconnects == 0  # no drop: it never played
    assert tries >= 2  # asked again within the first seconds before giving up
    assert ffmpeg_children() == []


def test_context_manager_cleans_up_when_the_player_gives_up_early(clip):
    with StreamServer(clip, 1.0) as server, StreamRelay(server.url("live"), 600.0, RATE) as relay:
        for _, _block in zip(range(5), relay, strict=False):
            pass
    assert ffmpeg_children() == []


def test_missing_ffmpeg_is_a_source_error():
    with pytest.raises(SourceError, match="not found"):
        StreamRelay("http://127.0.0.1/live", 10, RATE, ffmpeg="no-such-ffmpeg-binary")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (None, "must be an object"),
        ({"url": "http://x.vn/live"}, "missing 'duration_s'"),
        ({"url": "http://x.vn/live", "duration_s": 60, "volume": 1}, "unknown key 'volume'"),
        ({"url": "rtsp://x.vn/live", "duration_s": 60}, "http:// or https://"),
        ({"url": "http://x.vn/live", "duration_s": 0.5}, "between 1 and 86400"),
        ({"url": "http://x.vn/live", "duration_s": 86401}, "between 1 and 86400"),
        ({"url": "http://x.vn/live", "duration_s": "60"}, "must be a number"),
        ({"url": "http://x.vn/live", "duration_s": True}, "must be a number"),
        ({"url": "http://x.vn/live", "duration_s": float("nan")}, "must be a number"),
    ],
)
def test_malformed_stream_spec_is_rejected_with_reason(spec, reason):
    with pytest.raises(CommandError, match=reason):
        validate_stream_spec(spec)


def test_wellformed_stream_spec_passes():
    validate_stream_spec({"url": "https://radio.example.vn:8000/vov1", "duration_s": 1800})
    validate_stream_spec({"url": "http://10.1.2.3/live.mp3", "duration_s": 1.5})


def test_stream_urls_fail_over_on_a_drop_and_go_back_to_the_first_when_it_answers(tmp_path):
    """Protocol 1.1 `stream.urls` (issue 13 item 4): the next URL within 2 s of a drop, the first again once
    it answers (asked every `back_check_s`); the summary says how long each played and the drops."""
    first_clip = tone_file(tmp_path, "mp3", seconds=1.0, freq=440.0, rate=RATE).read_bytes()
    second_clip = tone_file(tmp_path, "mp3", seconds=1.0, freq=880.0, rate=RATE).read_bytes()
    heard: list[tuple[float, float]] = []  # (relay time, dominant frequency) of each loud block
    with StreamServer(first_clip, 1.0) as first, StreamServer(second_clip, 1.0) as second:
        relay = StreamRelay([first.url("live"), second.url("live")], 9.0, RATE, back_check_s=1.0)
        started = time.monotonic()
        for block in play(relay):
            now = time.monotonic() - started
            if loud(block):
                heard.append((now, dominant_hz(block, RATE)))
            first.down = 2.0 <= now < 5.0  # the first station's stream is off the air for three seconds
    assert ffmpeg_children() == []

    def at(hz: float) -> list[float]:
        return [t for t, f in heard if abs(f - hz) < 30]

    assert at(440) and at(880)
    assert min(at(880)) < 2.0 + 2.0 + 1.0  # the second within 2 s of the drop (plus its own start)
    assert max(at(440)) > 5.0 and any(t > min(at(880)) for t in at(440))  # then back to the first
    played = relay.summary()
    assert "#1 (127.0.0.1)" in played and "#2 (127.0.0.1)" in played and "reconnects (last drop:" in played
    seconds = relay.failover.played_s
    assert seconds[0] > 2.0 and seconds[1] > 1.0 and relay.reconnects >= 1


def test_a_stream_whose_urls_all_fail_is_failed_with_each_reason(tmp_path):
    with FileServer({}) as web:
        relay = StreamRelay([web.url("live"), "http://127.0.0.1:9/live"], 30.0, RATE, first_audio_s=1.0)
        list(play(relay))
    assert relay.failed == "#1 HTTP 404 from 127.0.0.1; #2 no HTTP answer from 127.0.0.1"
    assert ffmpeg_children() == []


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"urls": [], "duration_s": 60}, "a list of 1 to 3 URLs"),
        ({"urls": ["http://a.vn/1"] * 4, "duration_s": 60}, "a list of 1 to 3 URLs"),
        ({"urls": "http://a.vn/1", "duration_s": 60}, "a list of 1 to 3 URLs"),
        ({"urls": ["http://a.vn/1", "ftp://a.vn/2"], "duration_s": 60}, r"stream.urls\[1\] must start with http"),
        ({"urls": ["http://a.vn/1", "http://a.vn/1"], "duration_s": 60}, "the same URL twice"),
        ({"urls": ["http://a.vn/1"], "url": "http://a.vn/1", "duration_s": 60}, "unknown key 'url'"),
    ],
)
def test_malformed_stream_urls_are_rejected_with_reason(spec, reason):
    with pytest.raises(CommandError, match=reason):
        validate_stream_spec(spec)


def test_the_player_side_source_answers_at_once_and_is_woken_when_the_stream_gives_audio_or_none(clip):
    """Issue 17: a stream is connected before it goes on air, beside the player: `prepare` never waits."""
    woken = threading.Event()
    source = StreamSource(RATE, addresses=ANY_ADDRESS, on_ready=woken.set)
    with StreamServer(clip, 1.0) as server, FileServer({}) as web:
        live = Stream(urls=(server.url("live"),), duration_s=2.0)
        started = time.monotonic()
        with pytest.raises(NotReady, match="connecting to the stream at 127.0.0.1"):
            source.prepare(live)
        assert time.monotonic() - started < 0.5
        assert woken.wait(10), "not woken when the stream gave audio"
        program = source.prepare(live)
        assert program.relay.has_audio
        program.close()
        woken.clear()
        dead = Stream(urls=(web.url("live"),), duration_s=60.0)
        with pytest.raises(NotReady):
            source.prepare(dead)
        assert woken.wait(15), "not woken when the stream was found dead"
        with pytest.raises(SourceError, match="^the stream gave no audio: HTTP 404 from 127.0.0.1$"):
            source.prepare(dead)
    source.close()
    assert ffmpeg_children() == []
