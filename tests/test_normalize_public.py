"""The shared public normalisation set: every case must read as one of its accepted forms."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from loaxa.speech.normalize import normalize

PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "normalization" / "public.jsonl"


def canonical(text: str) -> str:
    """Lower case, punctuation removed, single spaces: how the set compares."""
    text = unicodedata.normalize("NFC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _cases() -> list[pytest.param]:
    if not PUBLIC.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"public set not found at {PUBLIC}"))]
    cases = []
    for number, line in enumerate(PUBLIC.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            case = json.loads(line)
            cases.append(pytest.param(case, id=f"{number:02d}-{case.get('note', '')[:40]}"))
    return cases


@pytest.mark.parametrize("case", _cases())
def test_public_case_reads_as_accepted(case: dict) -> None:
    spoken = normalize(case["input"])
    accepted = {canonical(a) for a in case["accept"]}
    assert canonical(spoken) in accepted, f"{case['input']!r} -> {spoken!r}"
