"""docs/normalization.md: every command runs as written and prints what the page says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loaxa.speech.normalize import Lexicon, normalize

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "normalization.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^ *```{language}\n(.*?)^ *```", PAGE, re.M | re.S)


def _commands() -> list[pytest.param]:
    """(command, the "# " line under it or None) for each line of the page's sh blocks."""
    found = []
    for block in _blocks("sh"):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.strip() and not line.startswith("#"):
                following = lines[i + 1] if i + 1 < len(lines) else ""
                expected = following[2:] if following.startswith("# ") else None
                found.append(pytest.param(line, expected, id=line[:50]))
    return found


def test_the_page_has_commands() -> None:
    assert len(_commands()) >= 3


@pytest.mark.parametrize(("command", "expected"), _commands())
def test_each_command_on_the_page_runs_as_written(command: str, expected: str | None) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    if expected is not None:
        assert result.stdout == expected + "\n"
    else:
        assert "normalize: median" in result.stdout, result.stdout


def test_the_context_entries_shown_on_the_page_read_as_their_comments_say(tmp_path: Path) -> None:
    (block,) = [b for b in _blocks("yaml") if "before_number" in b]
    path = tmp_path / "lexicon.local.yaml"
    path.write_text(block, encoding="utf-8")
    lexicon = Lexicon.load(path)

    def say(text: str) -> str:
        return normalize(text, lexicon=lexicon)

    assert say("BCH Đoàn, BCH quân sự, BCH QS") == "ban chấp hành Đoàn, ban chỉ huy quân sự, ban chỉ huy quân sự"
    assert say("số ĐT của xã, ĐT.549, ĐT 549, ĐT549") == (
        "số điện thoại của xã, đường tỉnh năm trăm bốn mươi chín, đường tỉnh năm trăm bốn mươi chín, "
        "đường tỉnh năm trăm bốn mươi chín"
    )
    assert say("Đài PTTH, trường PTTH") == "Đài phát thanh truyền hình, trường phổ thông trung học"
