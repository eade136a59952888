"""Technician and operator output in Vietnamese, chosen by the locale or --lang; English otherwise (issue 12)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from audio_servers import tone_file
from loaxa import i18n
from loaxa.cli import COMMANDS
from loaxa.cli._common import config_arg  # noqa: F401  (the CLI package imports cleanly)
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config

PACKAGE = Path(i18n.__file__).parent
CATALOG = i18n.read_po(i18n.LOCALE_DIR / "vi" / "LC_MESSAGES" / "loaxa.po")
LITERAL = re.compile(r'\b_\(\s*"((?:[^"\\]|\\.)*)"\s*\)')


# Marked for later translation in the reader's language (the console's pages): N_("...").
MARKED = re.compile(r'\bN_\(\s*"((?:[^"\\]|\\.)*)"\s*\)')
# In the console's Jinja templates: {{ _("...") }} or {{ _('...') }}.
IN_TEMPLATE = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*\)""")


def _unescape(text: str) -> str:
    return text.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")


def messages_in_code() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        code = path.read_text(encoding="utf-8")
        for pattern in (LITERAL, MARKED):
            found |= {_unescape(match.group(1)) for match in pattern.finditer(code)}
    found |= {help for _, _, help in COMMANDS}  # translated where the parser is built
    return found


def messages_in_templates() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("templates/**/*.html"):
        for match in IN_TEMPLATE.finditer(path.read_text(encoding="utf-8")):
            found.add(_unescape(match.group(1) if match.group(1) is not None else match.group(2)))
    return found


def test_every_message_the_code_translates_has_a_vietnamese_entry() -> None:
    missing = sorted(m for m in messages_in_code() if not CATALOG.get(m))
    assert not missing, f"add these to locale/vi/LC_MESSAGES/loaxa.po: {missing}"


def test_every_text_of_the_console_pages_has_a_vietnamese_entry() -> None:
    """Console templates: every {{ _("...") }} is in the catalog (issue 15: the pages are Vietnamese by default)."""
    found = messages_in_templates()
    assert "Log in" in found and "Users" in found  # the scan sees the templates
    missing = sorted(m for m in found if not CATALOG.get(m))
    assert not missing, f"add these to locale/vi/LC_MESSAGES/loaxa.po: {missing}"


def test_a_translation_keeps_every_field_of_its_message() -> None:
    fields = re.compile(r"\{(\w*)\}")
    for msgid, msgstr in CATALOG.items():
        if msgid:
            assert sorted(fields.findall(msgid)) == sorted(fields.findall(msgstr)), msgid
            assert re.findall(r"`[^`]*`", msgid) == re.findall(r"`[^`]*`", msgstr), f"commands stay as typed: {msgid}"


@pytest.mark.parametrize(
    ("asked", "env", "chosen"),
    [
        (None, {"LANG": "vi_VN.UTF-8"}, "vi"),
        ("vi", {"LANG": "C.UTF-8"}, "vi"),
        ("en", {"LANG": "vi_VN.UTF-8"}, "en"),
        (None, {"LANG": "fr_FR.UTF-8"}, "en"),  # no catalog: English
        (None, {"LANGUAGE": "vi:en", "LANG": "en_US.UTF-8"}, "vi"),
        (None, {}, "en"),
    ],
)
def test_the_language_comes_from_lang_or_the_locale(monkeypatch, asked, env, chosen) -> None:
    for key in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert i18n.choose(asked) == chosen


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("i18n")
    broker = start_mosquitto(tmp)
    op = Operator(broker.host, broker.port)
    root = tmp / "st"
    st = StationProcess(root, station_config(root, broker.port, f"wav:{root / 'aired'}")).start()
    op.wait_state(lambda s: s["online"], 30)
    op.send({"type": "bulletin", "id": "i18n-1", "text": "Xin chào."})
    op.wait_for("i18n-1", "finished", 60)
    yield st, broker, tmp
    assert st.stop() == 0, st.log()
    op.close()
    broker.stop()


def cases(st: StationProcess, broker, tmp: Path) -> list[tuple[list[str], str, str]]:
    """(arguments, what the English output says, what the Vietnamese one says)."""
    c = ["--config", str(st.config_path)]
    bad = tmp / "bad.yaml"
    bad.write_text(json.dumps({"station": {"province": "hn", "commune": "x", "id": "y"}, "text": {"lexicon": "no"}}))
    slug = tmp / "slug.yaml"
    slug.write_text(json.dumps({"station": {"province": "HN", "commune": "x", "id": "y"}}))
    wav = tone_file(tmp, "wav", seconds=0.3)
    mqtt = ["--host", broker.host, "--port", str(broker.port)]
    return [
        (["status", *c], "clock synced", "đồng hồ đã đồng bộ"),
        (["queue", *c], "next slot", "giờ phát tới"),
        (["log", "--since", "1h", *c], "aired at", "đã phát tại"),
        (["say", *c, "Xin chào."], "played by the daemon", "dịch vụ đã phát"),
        (["play", *c, str(wav)], "played by the daemon", "dịch vụ đã phát"),
        (["say", "--config", str(tmp / "none.yaml"), "x"], "no such configuration file", "không có tệp cấu hình này"),
        (["config", "--config", str(bad)], "lexicon", "lexicon"),
        (["doctor", *c, "--skip", "voice", "--skip", "runtime"], "what to do", "cần làm"),
        (["status", "--config", str(tmp / "nowhere.yaml")], "no such configuration file", "không có tệp cấu hình này"),
        (["config", "--config", str(slug)], "is not a slug: use lower-case", "chỉ dùng chữ thường"),
        (["stations", "--province", "hue", *mqtt], "station(s):", "trạm:"),
        (
            ["publish", "--station", "hue/phu-vang/loa-1", "--text", "Xin chào.", "--plain", *mqtt],
            "summary:",
            "tổng kết:",
        ),
        (
            ["publish", "--station", "hue/khong/co", "--text", "Xin chào.", "--plain", *mqtt],
            "never connected",
            "chưa từng kết nối",
        ),
        ([], "run the station daemon", "chạy dịch vụ của trạm"),
    ]


def loaxa(args: list[str], lang_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    done = subprocess.run(
        [sys.executable, "-m", "loaxa", *args], capture_output=True, text=True, timeout=120, env={**env, **lang_env}
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout + done.stderr


def test_each_command_speaks_vietnamese_by_the_locale_and_english_by_lang_en(station) -> None:
    st, broker, tmp = station
    for args, english, vietnamese in cases(st, broker, tmp):
        vi = loaxa(args, {"LANG": "vi_VN.UTF-8"})
        assert vietnamese in vi, (args, vi)
        en = loaxa(["--lang", "en", *args], {"LANG": "vi_VN.UTF-8"})
        assert english in en, (args, en)
        if english != vietnamese:
            assert vietnamese not in en, (args, en)


def test_lang_vi_after_the_sub_command_works_too(station) -> None:
    st, _, _ = station
    assert "đồng hồ đã đồng bộ" in loaxa(["status", "--config", str(st.config_path), "--lang", "vi"], {})
