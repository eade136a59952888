"""The compose page's previews (issue 15, compose): what the voice will say, and how it sounds.

A real province server with the console; the audio preview speaks with the
tiny generated Piper voice (`loaxa.testing.tinyvoice`) through the station's
own voice process, and with espeak-ng when the configured voice is missing.
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import threading
import time
import wave

import pytest

from loaxa.province.console.preview import MAX_SPOKEN_CHARS, Busy, Previewer, TooSlow
from loaxa.province.server.settings import ConsoleSettings
from loaxa.testing.console import Client, ConsoleBench, chromium, login, shoot, wait_until
from loaxa.testing.tinyvoice import make_tiny_voice

VOICE = "vi_VN-tiny-x_low"
TEXT = "Ngày 2/9, UBND xã họp lúc 7h30. Nhiệt độ 25°C; trời nắng."


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("console-preview")
    make_tiny_voice(root / "voices", name=VOICE)
    with ConsoleBench(root, console={"voice": VOICE, "voices_dir": str(root / "voices")}) as bench:
        yield bench


def logged_in(bench: ConsoleBench, name: str) -> tuple[Client, str]:
    """A client logged in as `name`, and the CSRF token of its session (from a page it is shown)."""
    client = Client(bench.url)
    assert client.login(name) == 303
    return client, client.csrf("/admin")  # any page shows it; for a non-admin this is the refusal page


def spoken_lines(html: str) -> list[str]:
    import re

    return [re.sub(r"<[^>]+>", "", m).strip() for m in re.findall(r'<span class="spoken-text">(.*?)</span>', html)]


def test_the_spoken_preview_is_the_stations_normaliser_sentence_by_sentence(bench):
    client, csrf = logged_in(bench, "editor")
    status, headers, body = client.post("/console/preview/spoken", {"csrf": csrf, "text": TEXT})
    assert status == 200 and headers["content-type"].startswith("text/html")
    station = subprocess.run(
        [sys.executable, "-m", "loaxa", "normalize"], input=TEXT, capture_output=True, text=True, check=True
    ).stdout.strip()
    lines = spoken_lines(body)
    assert lines == [
        "Ngày hai tháng chín, ủy ban nhân dân xã họp lúc bảy giờ ba mươi phút.",
        "Nhiệt độ hai mươi lăm độ xê; trời nắng.",
    ]
    assert " ".join(lines) == station  # the same words `loaxa normalize` prints, cut where the voice pauses
    assert "Giọng đọc nghe thử:" in body and f"piper:{VOICE}" in body  # Vietnamese by default, and the voice named


def test_the_spoken_preview_is_bounded_and_fast_enough_to_run_on_every_pause_in_typing(bench):
    client, csrf = logged_in(bench, "editor")
    paragraph = "Ngày 15/9/2026, UBND xã Ba Vì tổ chức tiêm phòng dại cho 1.250 con chó, mèo tại 12 thôn. "
    long_text = paragraph * (MAX_SPOKEN_CHARS // len(paragraph) + 20)  # past the bulletin's limit
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        status, _, body = client.post("/console/preview/spoken", {"csrf": csrf, "text": long_text})
        times.append(time.perf_counter() - t0)
        assert status == 200
    assert f"Chỉ hiển thị {MAX_SPOKEN_CHARS} ký tự đầu" in body
    assert len(" ".join(spoken_lines(body))) < 2 * MAX_SPOKEN_CHARS  # only the first 20,000 were read
    t0 = time.perf_counter()
    client.post("/console/preview/spoken", {"csrf": csrf, "text": TEXT})
    short_s = time.perf_counter() - t0
    print(
        f"spoken preview: {len(long_text)} chars median {statistics.median(times):.3f} s; a short text {short_s:.3f} s"
    )
    assert statistics.median(times) < 5.0  # sanity only; the figure is printed


def test_the_audio_preview_is_a_wav_in_the_configured_voice_and_says_which(bench):
    client, csrf = logged_in(bench, "editor")
    status, headers, body = _post_bytes(client, "/console/preview/audio", {"csrf": csrf, "text": TEXT})
    assert status == 200, body
    assert headers["content-type"] == "audio/wav"
    assert headers["x-loaxa-voice"] == f"piper:{VOICE}" and "x-loaxa-voice-fallback" not in headers
    assert headers["x-loaxa-sentences"] == "2/2"
    with wave.open(io.BytesIO(body)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        assert wav.getnframes() > 0.5 * 22050  # two sentences and their pauses
    t0 = time.perf_counter()
    again = _post_bytes(client, "/console/preview/audio", {"csrf": csrf, "text": TEXT})
    print(f"audio preview from the cache: {time.perf_counter() - t0:.3f} s")
    assert again[2] == body  # cached by (voice, text)


def test_previews_are_for_editors_and_need_the_csrf_token(bench):
    viewer, csrf = logged_in(bench, "viewer")
    assert viewer.post("/console/preview/spoken", {"csrf": csrf, "text": TEXT})[0] == 403
    assert viewer.post("/console/preview/audio", {"csrf": csrf, "text": TEXT})[0] == 403
    editor, _ = logged_in(bench, "editor")
    assert editor.post("/console/preview/audio", {"text": TEXT})[0] == 403  # a forged form: no token
    assert Client(bench.url).post("/console/preview/spoken", {"text": TEXT})[0] in (303, 401)


def test_an_empty_text_has_nothing_to_voice(bench):
    client, csrf = logged_in(bench, "editor")
    status, _, body = client.post("/console/preview/audio", {"csrf": csrf, "text": "  "})
    assert status == 400 and "nội dung đang trống" in body


# -- the previewer itself: fallback, one at a time, the deadline ---------------------------------


def test_without_the_configured_voice_espeak_ng_speaks_and_the_preview_says_so(tmp_path):
    previewer = Previewer(ConsoleSettings(voice="vi_VN-not-installed", voices_dir=tmp_path))
    try:
        assert previewer.voice_status()["name"] == "espeak:vi" and previewer.voice_status()["fallback"]
        audio = previewer.audio("Xin chào bà con.")
        assert audio.voice == "espeak:vi" and audio.fallback and "not installed" in (audio.reason or "")
        with wave.open(io.BytesIO(audio.wav)) as wav:
            assert wav.getnframes() > 0.3 * wav.getframerate()  # espeak-ng said something
    finally:
        previewer.close()


def test_one_preview_is_voiced_at_a_time_and_a_second_is_told_to_retry_at_once(tmp_path):
    voices = tmp_path / "voices"
    make_tiny_voice(voices, name=VOICE, crash="hang", crash_run=1)  # its first sentence never comes back
    previewer = Previewer(ConsoleSettings(voice=VOICE, voices_dir=voices), deadline_s=4.0)
    outcome: list[object] = []
    first = threading.Thread(target=lambda: outcome.append(_outcome(previewer, "Xin chào bà con.")))
    try:
        first.start()
        deadline = time.monotonic() + 30
        while not previewer.voicing() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert previewer.voicing()
        t0 = time.perf_counter()
        with pytest.raises(Busy):
            previewer.audio("Một bản tin khác.")
        assert time.perf_counter() - t0 < 1.0  # answered at once, not queued behind the first
        t0 = time.perf_counter()
        first.join(60)
        print(f"a hung voice's preview ended {time.perf_counter() - t0:.1f} s later: {outcome}")
        assert not first.is_alive() and outcome  # the deadline ends it (espeak-ng may have finished it first)
        assert outcome[0] is TooSlow or getattr(outcome[0], "fallback", False)
    finally:
        first.join(60)
        previewer.close()


def _outcome(previewer: Previewer, text: str) -> object:
    try:
        return previewer.audio(text)
    except TooSlow:
        return TooSlow


def _post_bytes(client: Client, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.parse
    import urllib.request

    data = urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(client.base + path, data=data, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with client.opener.open(req, timeout=60) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_in_the_browser_an_editor_sees_what_the_voice_will_say_and_plays_the_audio_preview(bench):
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        login(driver, bench.url, "editor", next="/compose")
        driver.find_element(By.ID, "title").send_keys("Họp ủy ban xã")
        driver.find_element(By.ID, "text").send_keys(TEXT)
        spoken = wait_until(driver, lambda d: d.find_element(By.ID, "spoken-preview").text)
        wait_until(driver, lambda d: "bảy giờ ba mươi phút" in d.find_element(By.ID, "spoken-preview").text)
        assert (
            "Ngày hai tháng chín, ủy ban nhân dân xã họp lúc bảy giờ ba mươi phút."
            in driver.find_element(By.ID, "spoken-preview").text
        ), spoken
        driver.find_element(By.CSS_SELECTOR, "[data-audio-preview]").click()
        wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "[data-audio-status]").text == f"piper:{VOICE}")
        duration = wait_until(
            driver,
            lambda d: d.execute_script(
                "const a = document.getElementById('audio-preview');"
                "return a.readyState >= 1 && a.duration > 0 ? a.duration : null;"
            ),
        )
        assert duration > 0.5  # the browser decoded the server's WAV: two sentences and their pauses
        shoot(driver, "compose-preview")


def test_a_preview_being_voiced_never_holds_up_the_server_and_a_second_is_answered_503(tmp_path):
    """Synthesis runs in the thread pool, one at a time: pages and the spoken preview answer meanwhile."""
    make_tiny_voice(tmp_path / "voices", name=VOICE, crash="hang", crash_run=1)  # the first sentence never returns
    with ConsoleBench(tmp_path, console={"voice": VOICE, "voices_dir": str(tmp_path / "voices")}) as slow:
        client, csrf = logged_in(slow, "editor")
        first: list[tuple[int, dict[str, str], bytes]] = []
        hung = threading.Thread(
            target=lambda: first.append(_post_bytes(client, "/console/preview/audio", {"csrf": csrf, "text": TEXT}))
        )
        hung.start()
        try:
            deadline = time.monotonic() + 30
            while "preview voice:" not in slow.server.log() and time.monotonic() < deadline:
                time.sleep(0.05)  # the first request holds the voice: its speaker is built under the lock
            assert "preview voice: piper:" in slow.server.log()
            t0 = time.perf_counter()
            status, headers, body = _post_bytes(client, "/console/preview/audio", {"csrf": csrf, "text": "Tin khác."})
            busy_s = time.perf_counter() - t0
            assert not first, "the hung voice answered"
            assert status == 503 and headers["retry-after"] == "3", body
            assert "đang tạo một bản nghe thử khác" in body.decode()
            t0 = time.perf_counter()
            assert client.post("/console/preview/spoken", {"csrf": csrf, "text": TEXT})[0] == 200
            assert client.get("/login")[0] in (200, 303)
            other_s = time.perf_counter() - t0
            print(f"while a preview hangs: 503 in {busy_s:.3f} s, a spoken preview and a page in {other_s:.3f} s")
            assert busy_s < 2.0 and other_s < 5.0  # sanity bounds: answered, not queued behind the hung voice
        finally:
            hung.join(90)
        status, headers, body = first[0]
        print(f"the hung preview ended {status} with {headers.get('x-loaxa-voice')}")
        if status == 200:  # the sentence's 20 s deadline passed and espeak-ng spoke, within the preview's 30 s
            assert headers["x-loaxa-voice"] == "espeak:vi"
        else:  # or, on a machine too loaded for that, the preview's own deadline ended it
            assert status == 504 and "30 giây" in body.decode()
