"""Recorded audio uploads and /media (issue 15, compose: "the server hosts the file and sends its URL and sha256").

A real server with the console; the files are checked by the station's
ffmpeg decoding and fetched back by the station's own downloader
(`loaxa.sources.recorded.fetch_audio`), which checks the SHA-256.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from audio_servers import tone_file
from loaxa.download import PUBLIC_ONLY
from loaxa.sources._common import SourceError
from loaxa.sources.recorded import fetch_audio
from loaxa.sources.registry import address_policy
from loaxa.testing.console import Client, ConsoleBench
from loaxa.testing.disk import tmpfs

UPLOAD_MAX_MB = 1


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("console-media")
    with ConsoleBench(root, console={"upload_max_mb": UPLOAD_MAX_MB}) as bench:
        yield bench


def media_dir(bench: ConsoleBench) -> Path:
    return Path(bench.server.config["data_dir"]) / "media"


def logged_in(bench: ConsoleBench, name: str) -> tuple[Client, str]:
    client = Client(bench.url)
    assert client.login(name) == 303
    return client, client.csrf("/admin")  # the session's token, from a page it is shown


def upload(
    client: Client, csrf: str | None, name: str, data: bytes, *, chunked: bool = False
) -> tuple[int, dict[str, str], bytes]:
    return upload_to(client, "/console/uploads", csrf, name, data, chunked=chunked)


def upload_to(
    client: Client, path: str, csrf: str | None, name: str, data: bytes, *, chunked: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """POST a file in field `file` as a browser's form does (multipart), or as a stream without a length."""
    boundary = "----loaxa" + secrets.token_hex(8)
    parts = []
    if csrf is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": _cookies(client)}
    host, port = client.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        if chunked:
            conn.request(
                "POST",
                path,
                body=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
                headers=headers,
                encode_chunked=True,
            )
        else:
            conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    except (BrokenPipeError, ConnectionResetError):
        answer = conn.getresponse()  # the server answered and closed before the body was all sent
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def _cookies(client: Client) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in client.jar)


def test_an_upload_is_kept_under_its_sha256_and_a_station_downloads_it_from_media(bench, tmp_path):
    client, csrf = logged_in(bench, "editor")
    wav = tone_file(tmp_path, "wav", seconds=2.0)
    data = wav.read_bytes()
    status, headers, body = upload(client, csrf, "thông báo xã.wav", data)
    assert status == 200, body
    answer = json.loads(body)
    digest = hashlib.sha256(data).hexdigest()
    port = bench.url.rsplit(":", 1)[1]
    assert answer == {
        "url": f"http://127.0.0.1:{port}/media/{digest}.wav",
        "sha256": digest,
        "bytes": len(data),
        "duration_s": pytest.approx(2.0, abs=0.05),
        "filename": "thông báo xã.wav",
    }
    assert (media_dir(bench) / f"{digest}.wav").read_bytes() == data
    db = sqlite3.connect(Path(bench.server.config["data_dir"]) / "province.db")
    audit = db.execute("SELECT user, detail FROM audit WHERE path = '/console/uploads' AND status = 200").fetchall()
    db.close()
    assert ("editor", f"uploaded {digest}.wav (thông báo xã.wav)") in audit  # who uploaded what, in the audit log
    assert not [p.name for p in media_dir(bench).iterdir() if p.name.startswith(".")]  # no temporary file left

    db = sqlite3.connect(Path(bench.server.config["data_dir"]) / "province.db")
    row = db.execute("SELECT filename, mime, bytes, duration_s, uploaded_by FROM media WHERE sha256 = ?", (digest,))
    assert row.fetchone() == ("thông báo xã.wav", "audio/wav", len(data), pytest.approx(2.0, abs=0.05), "editor")
    db.close()

    # No login: the stations fetch it. The station's own downloader, its SHA-256 check, its address policy.
    with urllib.request.urlopen(answer["url"], timeout=10) as got:
        assert got.headers["Content-Type"] == "audio/wav"
        assert got.headers["Content-Length"] == str(len(data))
    allowed = address_policy(False, ("127.0.0.1",))  # security.private_url_hosts: [the server's host]
    fetched = fetch_audio(answer["url"], digest, tmp_path / "station-cache", 10_000_000, 30.0, addresses=allowed)
    assert fetched.read_bytes() == data
    with pytest.raises(SourceError, match="private|not allowed|public"):  # a station not told the server's host
        fetch_audio(answer["url"], digest, tmp_path / "other-cache", 10_000_000, 30.0, addresses=PUBLIC_ONLY)


@pytest.mark.parametrize(("fmt", "mime"), [("mp3", "audio/mpeg"), ("ogg", "audio/ogg"), ("flac", "audio/flac")])
def test_mp3_ogg_and_flac_keep_their_kind(bench, tmp_path, fmt, mime):
    client, csrf = logged_in(bench, "editor")
    if fmt == "flac":
        wav = tone_file(tmp_path, "wav", seconds=1.5)
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), str(tmp_path / "t.flac")], check=True
        )
        data = (tmp_path / "t.flac").read_bytes()
    else:
        data = tone_file(tmp_path, fmt, seconds=1.5).read_bytes()
    status, _, body = upload(client, csrf, f"ban-tin.{fmt}", data)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["url"].endswith(f"/media/{hashlib.sha256(data).hexdigest()}.{fmt}")
    assert answer["duration_s"] == pytest.approx(1.5, abs=0.1)
    with urllib.request.urlopen(answer["url"], timeout=10) as got:
        assert got.headers["Content-Type"] == mime and got.read() == data


def test_a_file_that_is_not_audio_is_refused_with_why(bench):
    client, csrf = logged_in(bench, "editor")
    text = "Đây là văn bản, không phải âm thanh.\n".encode() * 50
    status, _, body = upload(client, csrf, "ban-tin.mp3", text)
    assert status == 422
    assert "không phải tệp WAV, MP3, OGG hay FLAC" in json.loads(body)["error"]
    assert not list(media_dir(bench).glob(hashlib.sha256(text).hexdigest() + ".*"))
    assert not [p.name for p in media_dir(bench).iterdir() if p.name.startswith(".")]


def test_a_file_over_the_limit_is_refused_before_it_is_read(bench):
    client, csrf = logged_in(bench, "editor")
    big = secrets.token_bytes(UPLOAD_MAX_MB * 1024 * 1024 + 200_000)
    status, _, body = upload(client, csrf, "lon.wav", big)
    assert status == 413 and b"1 MB" in body
    status, _, body = upload(client, csrf, "lon.wav", big, chunked=True)  # no Content-Length: counted as it comes
    assert status == 413
    db = sqlite3.connect(Path(bench.server.config["data_dir"]) / "province.db")
    refused = db.execute("SELECT count(*) FROM audit WHERE path = '/console/uploads' AND status = 413").fetchone()[0]
    db.close()
    assert refused == 2  # each refusal is in the audit log


def test_uploads_are_for_editors_with_the_csrf_token(bench, tmp_path):
    data = tone_file(tmp_path, "wav", seconds=0.5).read_bytes()
    viewer, csrf = logged_in(bench, "viewer")
    assert upload(viewer, csrf, "a.wav", data)[0] == 403
    editor, _ = logged_in(bench, "editor")
    assert upload(editor, None, "a.wav", data)[0] == 403  # forged: no token
    assert upload(Client(bench.url), None, "a.wav", data)[0] in (303, 401)


@pytest.mark.parametrize(
    "path",
    [
        "/media/../province.db",
        "/media/%2e%2e%2fprovince.db",
        "/media/..%2Fprovince.db",
        "/media/" + "0" * 64 + ".exe",
        "/media/" + "A" * 64 + ".wav",
        "/media/province.db",
        "/media/",
    ],
)
def test_media_serves_only_its_own_files(bench, path):
    try:
        urllib.request.urlopen(bench.url + path, timeout=10)
        raise AssertionError(f"{path} was served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404


def test_a_full_disk_is_an_error_message_and_the_server_goes_on(bench, tmp_path):
    client, csrf = logged_in(bench, "editor")
    data = tone_file(tmp_path, "wav", seconds=5.0).read_bytes()  # 430 kB: more than the disk holds
    folder = media_dir(bench)
    folder.mkdir(parents=True, exist_ok=True)
    kept = {p.name: p.read_bytes() for p in folder.iterdir()}
    with tmpfs(folder, "size=256k"):
        status, _, body = upload(client, csrf, "day.wav", data)
        assert status == 507
        assert "ổ đĩa của máy chủ đã đầy" in json.loads(body)["error"]
        assert [p.name for p in folder.iterdir()] == []  # nothing half-written left behind
    for name, content in kept.items():
        assert (folder / name).read_bytes() == content
    status, _, body = upload(client, csrf, "day.wav", data)  # room again: the same server takes it
    assert status == 200, body
