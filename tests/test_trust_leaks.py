"""Issue 17, "nothing leaks" and "a dead stream is not a success", on the sources side.

A bulletin's URL is chosen by whoever can send a command. Regressions
guarded: the `failed` receipt quoted what any host:port answered
(`BadStatusLine: SSH-2.0-OpenSSH…`); "connection refused" and a timeout
read differently, which maps the ports of the commune's network through the
province's broker; receipts named local paths (`…/data/audio/<sha>`); the
station fetched from loopback and private addresses; a stream to a closed
port or a 404 aired silence between two chimes and reported `finished`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from audio_servers import FileServer, RawServer, StreamServer, closed_port_url, tone, tone_file, write_wav
from loaxa.config import parse_config
from loaxa.download import ANY_ADDRESS, PUBLIC_ONLY, AddressPolicy, DownloadError, NotAllowed, download, is_public
from loaxa.errors import ConfigError
from loaxa.sources.stream import StreamRelay
from loaxa.testing.station import Operator, StationProcess, station_config

# One line as http.client reads it, with a carriage return that would forge a log line if written raw.
BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\rCRITICAL amplifier forged on\r\n"
MB = 1_000_000


def fetch(url: str, addresses: AddressPolicy = ANY_ADDRESS, deadline_s: float = 5.0) -> bytes:
    out = io.BytesIO()
    download(url, out, max_bytes=MB, deadline_s=deadline_s, addresses=addresses)
    return out.getvalue()


def failure(url: str, **kwargs: Any) -> str:
    with pytest.raises(DownloadError) as info:
        fetch(url, **kwargs)
    return str(info.value)


# -- what a receipt may say ---------------------------------------------------------------------
def test_a_banner_that_is_not_http_is_not_quoted_and_goes_to_the_log_escaped(caplog):
    caplog.set_level(logging.INFO, logger="loaxa.download")
    with RawServer(BANNER) as ssh:
        said = failure(ssh.url("x.wav"))
    assert said == "no HTTP answer from 127.0.0.1"
    logged = [r.getMessage() for r in caplog.records if "SSH-2.0" in r.getMessage()]
    assert logged, "the banner should be in the local log, for the technician"
    assert all("\n" not in line and "\r" not in line for line in logged)  # escaped: no forged log line


def test_refused_silent_and_not_http_read_alike_so_a_url_is_no_port_scanner():
    with RawServer(silent=True) as silent, RawServer(BANNER) as banner:
        said = {
            failure(closed_port_url()),
            failure(silent.url("x"), deadline_s=1.0),
            failure(banner.url("x")),
        }
    assert said == {"no HTTP answer from 127.0.0.1"}


def test_a_stream_to_a_silent_port_reads_as_one_to_a_closed_port():
    with RawServer(silent=True) as silent:
        said = set()
        for url in (closed_port_url(), silent.url("live")):
            relay = StreamRelay(url, 30.0, 22050, first_audio_s=1.0, addresses=ANY_ADDRESS)
            list(relay)
            said.add(relay.failed)
    assert said == {"no HTTP answer from 127.0.0.1"}


def test_an_error_page_gives_its_status_number_only():
    with FileServer({}) as server:
        said = failure(server.url("missing.wav"))
    assert said == "HTTP 404 from 127.0.0.1"  # not the reason phrase, not the page


# -- where a station may fetch from -------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1%eth0",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "not an address",
    ],
)
def test_loopback_private_link_local_and_reserved_addresses_are_not_public(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_global_unicast_addresses_are_public(address):
    assert is_public(address)


def test_by_default_a_loopback_server_is_never_connected_to():
    with FileServer({"f.bin": b"secret"}) as server:
        with pytest.raises(NotAllowed, match=r"^127\.0\.0\.1 is at a private or reserved address"):
            fetch(server.url("f.bin"), PUBLIC_ONLY)
        assert server.requests == 0


def test_the_address_checked_is_the_address_resolved_whatever_the_name(monkeypatch):
    """A public-looking name that resolves to loopback (DNS rebinding) is refused before any connection."""
    with FileServer({"f.bin": b"secret"}) as server:
        port = int(server.url("").split(":")[2].split("/")[0])
        real = socket.getaddrinfo

        def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
            return real("127.0.0.1", *args, **kwargs) if host == "media.example.vn" else real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        with pytest.raises(NotAllowed, match=r"^media\.example\.vn is at a private"):
            fetch(f"http://media.example.vn:{port}/f.bin", PUBLIC_ONLY)
        assert server.requests == 0


def test_a_named_media_host_is_allowed_and_a_redirect_from_it_to_another_private_address_is_not():
    with FileServer({"f.bin": b"the province's own"}) as server:
        port = int(server.url("").split(":")[2].split("/")[0])
        server.moved["away.bin"] = server.url("f.bin")  # 127.0.0.1, not the name allowed
        media = AddressPolicy(hosts=frozenset({"localhost"}))
        assert fetch(f"http://localhost:{port}/f.bin", media) == b"the province's own"
        before = server.requests
        with pytest.raises(NotAllowed, match=r"^127\.0\.0\.1 is at a private"):
            fetch(f"http://localhost:{port}/moved/away.bin", media)
        assert server.requests == before + 1  # the redirect was asked for; its target never


# -- through the station ------------------------------------------------------------------------
def run_station(tmp_path: Path, broker: Any, op: Operator, **overrides: Any) -> StationProcess:
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, broker.port, f"wav:{tmp_path / 'aired'}", **overrides))
    station.start()
    op.wait_state(lambda st: st["online"], 30)
    return station


def recording(data: bytes, url: str) -> dict[str, str]:
    return {"url": url, "sha256": hashlib.sha256(data).hexdigest()}


def test_failed_receipts_say_what_failed_in_the_stations_words(tmp_path, broker, operator):
    not_audio = b"<html>this is not audio at all</html>" * 50
    station = run_station(tmp_path, broker, operator)
    try:
        with RawServer(BANNER) as ssh, FileServer({"page.wav": not_audio}) as web:
            # Each its own sha256: the station fetches a recording once, whichever bulletin names it.
            cases = {
                "banner": (recording(b"1", ssh.url("x.wav")), "no HTTP answer from 127.0.0.1"),
                "closed": (recording(b"2", closed_port_url("x.wav")), "no HTTP answer from 127.0.0.1"),
                "missing": (recording(b"3", web.url("nothing.wav")), "HTTP 404 from 127.0.0.1"),
                "page": (recording(not_audio, web.url("page.wav")), "not an audio file ffmpeg can decode"),
            }
            for id, (audio, _) in cases.items():
                operator.send({"type": "bulletin", "id": id, "audio": audio})
            for id, (_, said) in cases.items():
                assert operator.wait_for(id, "failed", 60)["detail"] == said
        storage = station.config["storage"]["dir"]
        for event in operator.events:
            text = str(event)
            assert "SSH" not in text and storage not in text and "/audio/" not in text, event
        assert "SSH-2.0-OpenSSH" in station.log()  # the technician still finds it, escaped, in the log
        assert "\rCRITICAL amplifier forged on" not in station.log()
    finally:
        assert station.stop() == 0, station.log()


def test_a_station_refuses_private_urls_unless_allowed_by_name(tmp_path, broker, operator):
    data = write_wav(tmp_path / "notice.wav", tone(0.5, 660.0)).read_bytes()
    other = write_wav(tmp_path / "other.wav", tone(0.5, 440.0)).read_bytes()
    clip = tone_file(tmp_path, "mp3", seconds=1.0, rate=22050).read_bytes()
    station = run_station(
        tmp_path, broker, operator, security__allow_private_urls=False, security__private_url_hosts=["localhost"]
    )
    try:
        with FileServer({"notice.wav": data, "other.wav": other}) as files, StreamServer(clip, 1.0) as radio:
            port = int(files.url("").split(":")[2].split("/")[0])
            operator.send({"type": "bulletin", "id": "by-address", "audio": recording(data, files.url("notice.wav"))})
            stream = {"url": radio.url("live"), "duration_s": 5}
            operator.send({"type": "bulletin", "id": "relay", "stream": stream})
            refused = operator.wait_for("by-address", "failed", 30)["detail"]
            relay = operator.wait_for("relay", "failed", 30)["detail"]
            by_name = recording(other, f"http://localhost:{port}/other.wav")
            operator.send({"type": "bulletin", "id": "by-name", "audio": by_name, "chime": False})
            operator.wait_for("by-name", "finished", 30)
            assert refused.startswith("127.0.0.1 is at a private or reserved address")
            assert relay.startswith("the stream gave no audio: 127.0.0.1 is at a private or reserved address")
            assert files.requests == 1 and radio.requests == 0  # only the named host was asked
        assert operator.of("by-address") == ["received", "failed"]
        assert operator.of("relay") == ["received", "failed"]  # never on air
    finally:
        assert station.stop() == 0, station.log()


def test_a_dead_stream_is_failed_with_why_and_never_airs(tmp_path, broker, operator):
    """Issue 17: a stream to a closed port or a 404 aired silence between two chimes and said `finished`."""
    station = run_station(tmp_path, broker, operator)
    try:
        with FileServer({}) as web:
            operator.send({"type": "bulletin", "id": "closed", "stream": {"url": closed_port_url(), "duration_s": 60}})
            operator.send({"type": "bulletin", "id": "404", "stream": {"url": web.url("live"), "duration_s": 60}})
            closed = operator.wait_for("closed", "failed", 30)
            missing = operator.wait_for("404", "failed", 30)
        assert closed["detail"] == "the stream gave no audio: no HTTP answer from 127.0.0.1"
        assert missing["detail"] == "the stream gave no audio: HTTP 404 from 127.0.0.1"
        assert operator.of("closed") == ["received", "failed"] and operator.of("404") == ["received", "failed"]
        assert not list((tmp_path / "aired").glob("*.wav"))  # not one session: no chime, no silence
    finally:
        assert station.stop() == 0, station.log()


def test_a_relay_that_dropped_part_way_reports_how_much_actually_played(tmp_path, broker, operator):
    clip = tone_file(tmp_path, "mp3", seconds=1.0, rate=22050).read_bytes()
    station = run_station(tmp_path, broker, operator)
    try:
        # Two seconds of audio on the first connection, then the server answers 404 for good.
        with StreamServer(clip, 1.0, drop_after_s=2.0, burst_s=0.5, connections=1) as radio:
            operator.send({"type": "bulletin", "id": "relay", "stream": {"url": radio.url("live"), "duration_s": 8}})
            finished = operator.wait_for("relay", "finished", 60)["detail"]
        relayed = float(finished.split("relayed ")[1].split(" s")[0])
        assert 1.0 <= relayed <= 2.5  # what came before the drop, not the 8 s asked for
        assert "reconnects (last drop: HTTP 404 from 127.0.0.1)" in finished
        assert operator.of("relay") == ["received", "started", "finished"]
    finally:
        assert station.stop() == 0, station.log()


def test_a_stream_with_two_urls_fails_over_and_finished_says_how_long_each_played(tmp_path, broker, operator):
    """Protocol 1.1 `stream.urls` through the station: the first drops for good, the second carries on."""
    first_clip = tone_file(tmp_path, "mp3", seconds=1.0, freq=440.0, rate=22050).read_bytes()
    second_clip = tone_file(tmp_path, "mp3", seconds=1.0, freq=880.0, rate=22050).read_bytes()
    station = run_station(tmp_path, broker, operator)
    try:
        with (
            StreamServer(first_clip, 1.0, drop_after_s=1.5, burst_s=0.5, connections=1) as first,
            StreamServer(second_clip, 1.0, burst_s=0.5) as second,
        ):
            stream = {"urls": [first.url("live"), second.url("live")], "duration_s": 5}
            operator.send({"type": "bulletin", "id": "relay", "stream": stream, "chime": False})
            finished = operator.wait_for("relay", "finished", 60)["detail"]
        played = finished.split("relayed ")[1]
        on_first = float(played.split("#1 (127.0.0.1) ")[1].split(" s")[0])
        on_second = float(played.split("#2 (127.0.0.1) ")[1].split(" s")[0])
        assert 1.0 <= on_first <= 2.0 and on_second >= 1.0, finished
        assert "reconnects (last drop: 127.0.0.1 ended the stream)" in finished
    finally:
        assert station.stop() == 0, station.log()


@pytest.mark.parametrize("host", ["http://media.hue.gov.vn", "media.hue.gov.vn:8080", "user@media", "", "media."])
def test_a_private_url_host_is_a_bare_name_or_the_config_says_which_key_is_wrong(tmp_path, host):
    config = station_config(tmp_path, 1883, "null", security__private_url_hosts=[host])
    with pytest.raises(ConfigError, match=r"security\.private_url_hosts"):
        parse_config(config)


def test_private_url_hosts_take_names_and_addresses_and_the_default_refuses_private_ones(tmp_path):
    named = parse_config(
        station_config(tmp_path, 1883, "null", security__private_url_hosts=["Media.Hue.gov.vn", "fd00::5"])
    )
    assert named.security.private_url_hosts == ("media.hue.gov.vn", "fd00::5")
    defaults = parse_config({"station": {"province": "p", "commune": "c", "id": "s"}})
    assert defaults.security.allow_private_urls is False and defaults.security.private_url_hosts == ()
