"""`loaxa` starts fast: a sub-command's module is imported only when it runs (issue 12).

Checked by what is imported, which does not depend on how loaded the
machine is; `scripts/bench_cli_start.py` gives the seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loaxa.cli import COMMANDS


def imported(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules loaded by the time `loaxa ARGV` exits."""
    out = tmp_path / "modules.txt"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(out)!r}, 'w').write('\\n'.join(sys.modules)))\n"
        "from loaxa.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, env={**os.environ, **(env or {})})
    return set(out.read_text().split())


def test_help_imports_no_sub_command_and_no_heavy_library(tmp_path: Path) -> None:
    modules = imported(tmp_path, "--help")
    assert not {f"loaxa.cli.{m}" for _, m, _ in COMMANDS} & modules
    assert not {"pydantic", "numpy", "rich", "paho", "yaml"} & {m.split(".")[0] for m in modules}


def test_status_without_a_daemon_imports_only_what_status_needs(tmp_path) -> None:
    config = tmp_path / "loaxa.yaml"
    config.write_text(f"station: {{province: p, commune: c, id: s}}\nstorage: {{dir: {tmp_path}}}\n")
    modules = imported(tmp_path, "status", env={"LOAXA_CONFIG": str(config)})
    assert "loaxa.cli.status" in modules
    others = {f"loaxa.cli.{m}" for _, m, _ in COMMANDS if m != "status"}
    assert not others & modules
    assert not {"numpy", "onnxruntime", "paho", "sounddevice"} & {m.split(".")[0] for m in modules}
