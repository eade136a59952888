"""Properties: every number reads back to itself; no input makes the normaliser fail."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loaxa.speech.normalize import normalize
from loaxa.speech.normalize.numbers import read_int
from loaxa.speech.split import split_sentences

UNIT = {"một": 1, "hai": 2, "ba": 3, "bốn": 4, "năm": 5, "sáu": 6, "bảy": 7, "tám": 8, "chín": 9}
SCALES = (("tỷ", 10**9), ("triệu", 10**6), ("nghìn", 1000), ("ngàn", 1000))


def parse_below_1000(words: list[str]) -> int:
    """A strict reader of 0..999 as the conventions write it."""
    value = 0
    if len(words) >= 2 and words[1] == "trăm":
        value = 100 * ({"không": 0} | UNIT)[words[0]]
        words = words[2:]
        if words and words[0] in ("linh", "lẻ"):
            assert len(words) == 2 and words[1] in UNIT, words
            return value + UNIT[words[1]]
    if not words:
        return value
    if words[0] == "mười":
        tens, rest = 1, words[1:]
    elif len(words) >= 2 and words[1] == "mươi":
        tens, rest = UNIT[words[0]], words[2:]
        assert tens >= 2
    else:
        assert len(words) == 1, words
        return value + UNIT[words[0]]
    value += 10 * tens
    if rest:
        assert len(rest) == 1, rest
        allowed = (
            {"lăm": 5}
            | ({"mốt": 1, "tư": 4} if tens > 1 else {})
            | {k: v for k, v in UNIT.items() if v != 5 and not (tens > 1 and v == 1)}
        )
        value += allowed[rest[0]]
    return value


def parse(text: str) -> int:
    """Vietnamese number words back to an integer (the reader the property needs)."""
    words = text.split()
    if words == ["không"]:
        return 0
    for scale, size in SCALES:
        if scale in words:
            cut = len(words) - 1 - words[::-1].index(scale)
            return parse(" ".join(words[:cut])) * size + (parse(" ".join(words[cut + 1 :])) if words[cut + 1 :] else 0)
    return parse_below_1000(words)


def test_parser_reads_known_forms() -> None:
    assert parse("một nghìn tỷ không trăm linh năm") == 10**12 + 5
    assert parse("hai mươi tư") == parse("hai mươi bốn") == 24


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["north", "south"]))
def test_every_integer_reads_back_to_itself(n: int, dialect: str) -> None:
    assert parse(read_int(n, dialect)) == n
    # The same number written with thousands dots, through the whole normaliser.
    written = f"{n:,}".replace(",", ".")
    assert parse(normalize(written, dialect=dialect)) == n


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["north", "south"]))
def test_normaliser_never_raises_on_any_text(text: str, dialect: str) -> None:
    spoken = normalize(text, dialect=dialect)
    assert isinstance(spoken, str)
    assert not any("\ue000" <= c <= "\uf8ff" for c in spoken)
    split_sentences(spoken, max_chars=40)


BULLETIN_ALPHABET = st.sampled_from(
    list("0123456789./,-:%°hgđ ")
    + ["UBND", "XV", "km", "m2", "Q.", "@", "thứ ", "tháng "]
    # Round 2 (issue 16): dashes, footnotes, brackets, links, context words.
    + list("–¹²[]()<>")
    + ["số nhà ", "gọi ", "lần", "đồng", "F", "f", "ĐT", "BCH ", "http://", ".vn", "TT&TT"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(BULLETIN_ALPHABET, max_size=30).map("".join))
def test_number_soup_never_raises_and_leaves_no_digits(text: str) -> None:
    spoken = normalize(text)
    assert not any(c.isdigit() for c in spoken), (text, spoken)
