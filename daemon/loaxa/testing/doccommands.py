"""The command lines the documentation gives a person to type, as written.

Found in fenced ```sh/```bash/```console blocks, in indented code blocks, and
in inline code spans that give arguments, wherever a line starts with `loaxa `, `.venv/bin/loaxa `,
`.venv/bin/python scripts/`, `scripts/` or `sudo scripts/`. A trailing
`# comment` is dropped, `\\` continuations are joined, and `$ ` prompts removed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

STARTS = re.compile(r"^(?:sudo )?(?:loaxa |\.venv/bin/loaxa |\.venv/bin/python scripts/|scripts/)")
_FENCE = re.compile(r"^```(\w*)\s*$")
_SPAN = re.compile(r"`([^`\n]+)`")
_SHELL = {"sh", "bash", "console", "shell", ""}


@dataclass(frozen=True)
class DocCommand:
    line: str  # the command, as a person would type it
    source: str  # file:line

    def words(self) -> list[str]:
        return shlex.split(self.line)


def commands_in(path: Path, root: Path) -> list[DocCommand]:
    """Every command line in one Markdown file, in order, each once."""
    rel = path.relative_to(root)
    found: list[DocCommand] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    fence: str | None = None
    pending = ""
    start = 0
    for number, raw in enumerate(lines, 1):
        opening = _FENCE.match(raw.strip())
        if opening and fence is None:
            fence = opening.group(1).lower()
            continue
        if raw.strip() == "```" and fence is not None:
            fence = None
            continue
        if fence is not None:
            if fence not in _SHELL:
                continue
            text = raw.strip()
        elif raw.startswith("    ") and not raw.lstrip().startswith(("-", "*", "|")):
            text = raw.strip()  # an indented code block
        else:
            for span in _SPAN.findall(raw):
                if STARTS.match(span) and _a_command_line(span):
                    found.append(DocCommand(_clean(span), f"{rel}:{number}"))
            continue
        if text.startswith("$ "):
            text = text[2:]
        if pending:
            text, pending = pending + " " + text, ""
        elif not STARTS.match(text):
            continue
        else:
            start = number
        if text.endswith("\\"):
            pending = text[:-1].rstrip()
            continue
        found.append(DocCommand(_clean(text), f"{rel}:{start}"))
    unique: dict[str, DocCommand] = {}
    for command in found:
        unique.setdefault(command.line, command)
    return list(unique.values())


def _a_command_line(span: str) -> bool:
    """Inline code is a command line when it gives arguments; `loaxa queue` or
    `scripts/x.py` alone in a sentence names a command (a `scripts/*.sh` or a
    `sudo` line is run as it stands), and `[--since 12h|7d]` is a synopsis."""
    if "[" in span:
        return False
    words = span.split()
    if words[0] == "sudo" or words[0].endswith(".sh"):
        return True  # a shell script is run by its name alone
    needed = 3 if words[0].endswith("loaxa") else 2
    return len(words) >= needed


def _clean(text: str) -> str:
    """The command without a trailing `# comment` (a `#` inside quotes, or inside a word, stays)."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip()
    return text.strip()


def documented_commands(root: Path) -> list[DocCommand]:
    """The command lines of README.md, docs/*.md and tts_models/README.md."""
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "tts_models" / "README.md"]
    out: list[DocCommand] = []
    seen: set[str] = set()
    for path in files:
        for command in commands_in(path, root):
            if command.line not in seen:
                seen.add(command.line)
                out.append(command)
    return out
