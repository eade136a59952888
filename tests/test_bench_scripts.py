"""The storage benchmarks run exactly as the README writes them, and print their figures."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_command(script: str) -> list[str]:
    """The README's command line for `script`, as written (inside backticks)."""
    found = re.search(r"`(\.venv/bin/python scripts/" + re.escape(script) + r"[^`]*)`", README)
    assert found, f"the README has no command for {script}"
    return shlex.split(found.group(1))


def test_bench_retention_as_the_readme_writes_it() -> None:
    result = subprocess.run(readme_command("bench_retention.py"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^day  365: +\d+ KiB", result.stdout, re.M), result.stdout
    assert "1825 bulletins" in result.stdout


def test_bench_storage_as_the_readme_writes_it() -> None:
    result = subprocess.run(readme_command("bench_storage.py"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^per bulletin: \d+\.\d KiB", result.stdout, re.M), result.stdout
