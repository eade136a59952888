"""Finding, listing, installing (from a local server) and verifying voices."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audio_servers import FileServer
from loaxa.cli import main
from loaxa.errors import VoiceError
from loaxa.speech import voices
from loaxa.speech.piper import NeuralVoice
from loaxa.testing.tinyvoice import make_tiny_voice

NAME = "vi_VN-vais1000-medium"
REPO_PATH = "vi/vi_VN/vais1000/medium"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local http.server serving a tiny voice where the real one would be."""
    root = tmp_path / "www"
    make_tiny_voice(root / REPO_PATH, name=NAME)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root / REPO_PATH
    httpd.shutdown()
    httpd.server_close()


def pinned(folder: Path) -> dict[str, voices.CatalogEntry]:
    def pin(path: Path) -> voices.PinnedFile:
        return voices.PinnedFile(path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())

    return {NAME: voices.CatalogEntry(REPO_PATH, pin(folder / f"{NAME}.onnx"), pin(folder / f"{NAME}.onnx.json"))}


def test_install_checks_the_pins_and_renames_into_place(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    seen: list[tuple[str, int, int]] = []
    target = tmp_path / "voices"
    path = voices.install(NAME, target, url=url, catalog=pinned(served), progress=lambda *a: seen.append(a))
    assert path == target / f"{NAME}.onnx"
    assert sorted(p.name for p in target.iterdir()) == [f"{NAME}.onnx", f"{NAME}.onnx.json"]
    assert seen and seen[-1][1] == seen[-1][2]
    assert NeuralVoice.load(path).sample_rate == 22050


def test_the_real_pins_refuse_a_different_file_and_leave_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    target = tmp_path / "voices"
    with pytest.raises(VoiceError, match="refused"):
        voices.install(NAME, target, url=url)
    assert list(target.iterdir()) == []


def test_a_tampered_file_of_the_right_size_is_refused(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    catalog = pinned(served)
    onnx = served / f"{NAME}.onnx"
    data = bytearray(onnx.read_bytes())
    data[-1] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(VoiceError, match="SHA-256"):
        voices.install(NAME, tmp_path / "voices", url=url, catalog=catalog)
    assert list((tmp_path / "voices").iterdir()) == []


def test_missing_file_on_the_server_is_a_clear_error(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    catalog = pinned(served)
    (served / f"{NAME}.onnx").unlink()
    with pytest.raises(VoiceError, match="HTTP 404"):
        voices.install(NAME, tmp_path / "voices", url=url, catalog=catalog)


def test_a_server_trickling_headers_fails_the_install_at_its_deadline(tmp_path: Path) -> None:
    catalog = {NAME: voices.CatalogEntry("dribble", voices.PinnedFile(10, "0" * 64), voices.PinnedFile(10, "0" * 64))}
    started = time.monotonic()
    expected = f"{NAME}.onnx.json: download failed from .*: timed out after 1 s"
    with (
        FileServer({f"{NAME}.onnx.json": b"{}", f"{NAME}.onnx": b"x"}, drip_s=0.1) as srv,
        pytest.raises(VoiceError, match=expected),
    ):
        voices.install(NAME, tmp_path / "voices", url=srv.url(""), catalog=catalog, deadline_s=1.0)
    assert time.monotonic() - started < 1.0 + 1.0
    assert list((tmp_path / "voices").iterdir()) == []


def test_unknown_voice_names_the_installable_ones(tmp_path: Path) -> None:
    with pytest.raises(VoiceError, match=NAME):
        voices.install("xx_XX-nobody-low", tmp_path)


def test_cli_install_refuses_a_mismatch_with_exit_1(
    server: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = server
    assert main(["voices", "--dir", str(tmp_path / "v"), "install", NAME, "--url", url]) == 1
    assert "refused" in caplog.text
    assert not (tmp_path / "v" / f"{NAME}.onnx").exists()


def test_find_voice_by_name_path_or_not_at_all(tmp_path: Path) -> None:
    onnx = make_tiny_voice(tmp_path / "vi", name="vi_VN-tiny-x_low")
    assert voices.find_voice("vi_VN-tiny-x_low", tmp_path) == onnx
    assert voices.find_voice(str(onnx), tmp_path / "elsewhere") == onnx
    with pytest.raises(VoiceError, match="loaxa voices install"):
        voices.find_voice(NAME, tmp_path)
    with pytest.raises(VoiceError, match="not found"):
        voices.find_voice(str(tmp_path / "gone.onnx"), tmp_path)


def test_list_shows_usable_and_broken_voices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tiny_voice(tmp_path, name="vi_VN-good-x_low")
    broken = make_tiny_voice(tmp_path, name="vi_VN-bad-x_low")
    broken.with_name(broken.name + ".json").write_text("{}", encoding="utf-8")
    found = {v.name: v for v in voices.list_voices(tmp_path)}
    assert found["vi_VN-good-x_low"].sample_rate == 22050 and found["vi_VN-good-x_low"].problem is None
    assert "missing" in str(found["vi_VN-bad-x_low"].problem)
    assert main(["voices", "--dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert "vi_VN-good-x_low" in out and "22,050 Hz" in out


def test_verify_passes_good_voices_and_fails_broken_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tiny_voice(tmp_path / "good")
    assert main(["voices", "--dir", str(tmp_path / "good"), "verify"]) == 0
    shutil.copytree(tmp_path / "good", tmp_path / "bad")
    (tmp_path / "bad" / "xx_XX-tiny-x_low.onnx").write_bytes(b"not onnx")
    assert main(["voices", "--dir", str(tmp_path / "bad"), "verify"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_verify_checks_the_pins_of_catalogued_voices(server: tuple[str, Path]) -> None:
    _, served = server
    assert voices.verify(served, catalog=pinned(served), load=False) == [(NAME, None)]
    ((name, problem),) = voices.verify(served, load=False)  # the real pins: a tiny voice is not vais1000
    assert name == NAME and "pinned" in str(problem)
