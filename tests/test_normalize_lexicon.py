"""The editable lexicon and the `loaxa normalize` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loaxa.errors import ConfigError
from loaxa.speech.normalize import Lexicon, normalize

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lexicon.local.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_lexicon_loads_and_is_shared() -> None:
    lexicon = Lexicon.load()
    assert lexicon is Lexicon.load()
    assert lexicon.lookup("UBND") == "ủy ban nhân dân"
    assert lexicon.lookup("ubnd") is None  # upper-case keys match only in upper case
    assert lexicon.lookup("COVID") == lexicon.lookup("covid") == "cô vít"


def test_local_additions_need_no_code_change(tmp_path: Path) -> None:
    path = write(tmp_path, "HTXDV: hợp tác xã dịch vụ\nKẻ Gỗ: kẻ gỗ\nUBND: ủy ban\n")
    lexicon = Lexicon.load(path)
    assert normalize("HTXDV thôn Kẻ Gỗ", lexicon=lexicon) == "hợp tác xã dịch vụ thôn kẻ gỗ"
    # A local entry overrides a built-in one; the built-in ones stay.
    assert normalize("UBND, BHYT", lexicon=lexicon) == "ủy ban, bảo hiểm y tế"
    assert normalize("HTXDV") == "hát tê ích xì dê vê"


def test_a_province_adds_entries_that_depend_on_their_neighbours(tmp_path: Path) -> None:
    """Issue 16 item 4: context rules are data a province writes, not code."""
    path = write(
        tmp_path,
        "TT:\n  say: thị trấn\n  before:\n    y tế: trung tâm\n    văn hóa: trung tâm\n"
        "ĐX:\n  say: đề xuất\n  before_number: đường xã\n"
        "KĐT:\n  say: khu đô thị\n  after:\n    dự án: khu đô thị mới\n",
    )
    lexicon = Lexicon.load(path)
    assert normalize("TT Y tế huyện và TT Đức Thọ", lexicon=lexicon) == "trung tâm y tế huyện và thị trấn Đức Thọ"
    assert normalize("tuyến ĐX.12, phiếu ĐX", lexicon=lexicon) == "tuyến đường xã mười hai, phiếu đề xuất"
    assert normalize("dự án KĐT và KĐT Bắc", lexicon=lexicon) == "dự án khu đô thị mới và khu đô thị Bắc"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("BCH:\n  say: ban chấp hành\n  beside: {quân sự: ban chỉ huy}\n", "unknown beside"),
        ("BCH:\n  before: {quân sự: ban chỉ huy}\n", "needs 'say:'"),
        ("BCH:\n  say: ban chấp hành\n  before: [quân sự]\n", "'before:' needs"),
        ("ĐX:\n  say: đề xuất\n  before_number: 5\n", "'before_number:' needs"),
    ],
)
def test_malformed_context_entry_names_the_problem(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        Lexicon.load(write(tmp_path, text))


def test_the_shipped_example_file_loads() -> None:
    lexicon = Lexicon.load(ROOT / "config" / "lexicon.local.yaml")
    assert len(lexicon) > len(Lexicon.load())


def test_empty_file_adds_nothing(tmp_path: Path) -> None:
    assert len(Lexicon.load(write(tmp_path, "# nothing yet\n"))) == len(Lexicon.load())


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("UBND: [ủy ban\n", "not valid YAML"),
        ("- UBND\n- HĐND\n", "expected a mapping"),
        ("UBND:\n", "needs a spoken form"),
        ("UBND: 5\n", "needs a spoken form"),
        ("1.5: một phẩy năm\n", "not text"),
    ],
)
def test_malformed_file_names_the_problem(tmp_path: Path, text: str, complaint: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=complaint) as info:
        Lexicon.load(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Lexicon.load(tmp_path / "absent.yaml")


def run_cli(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loaxa", "normalize", *args],
        input=stdin.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_cli_prints_one_line_per_line_and_nothing_else() -> None:
    result = run_cli("--dialect", "south", stdin="Ngày 22/9/2021, UBND xã\n\nCó 1.005 hộ\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("utf-8").split("\n") == [
        "Ngày hai mươi hai tháng chín năm hai ngàn không trăm hai mươi mốt, ủy ban nhân dân xã",
        "",
        "Có một ngàn không trăm lẻ năm hộ",
        "",
    ]


def test_cli_uses_a_local_lexicon(tmp_path: Path) -> None:
    path = write(tmp_path, "KG: kẻ gỗ\n")
    result = run_cli("--lexicon", str(path), stdin="thôn KG")
    assert result.stdout.decode("utf-8") == "thôn kẻ gỗ\n"


def test_cli_reports_a_bad_lexicon_in_one_line(tmp_path: Path) -> None:
    result = run_cli("--lexicon", str(write(tmp_path, "- a\n")), stdin="x\n")
    assert result.returncode == 1
    assert result.stdout == b""
    assert b"expected a mapping" in result.stderr
    assert b"Traceback" not in result.stderr
