"""Vietnamese number words: cardinals, digit strings, decimals, ordinals, Roman numerals.

The rules an announcer follows (north / south differ only where noted):
- units after "mươi" (20 and up): 1 is "mốt", 4 is "tư" (north) or "bốn"
  (south), 5 is "lăm"; after "mười" only 5 changes ("mười lăm", but
  "mười một", "mười bốn");
- a zero tens digit inside a hundred is "linh" (north) or "lẻ" (south):
  105 "một trăm linh năm";
- a group below 100 after a higher group keeps its hundreds: 1.005 "một
  nghìn không trăm linh năm"; wholly empty groups are skipped;
- 1000 is "nghìn" (north) or "ngàn" (south); 10^9 "tỷ", and larger numbers
  stack on "tỷ": 10^12 "một nghìn tỷ".
"""

from __future__ import annotations

import functools
import re
import unicodedata
from itertools import repeat

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
DIALECTS = ("north", "south")
# Longer digit strings are not quantities anyone says as a number.
MAX_CARDINAL_DIGITS = 15


def _thousand(dialect: str) -> str:
    return "ngàn" if dialect == "south" else "nghìn"


def _odd(dialect: str) -> str:
    return "lẻ" if dialect == "south" else "linh"


def _below_100(n: int, dialect: str) -> list[str]:
    """1..99 (0 is the caller's business)."""
    tens, unit = divmod(n, 10)
    if tens == 0:
        return [DIGITS[unit]]
    words = ["mười"] if tens == 1 else [DIGITS[tens], "mươi"]
    if unit == 0:
        return words
    if unit == 5:
        words.append("lăm")
    elif unit == 1 and tens > 1:
        words.append("mốt")
    elif unit == 4 and tens > 1 and dialect != "south":
        words.append("tư")
    else:
        words.append(DIGITS[unit])
    return words


def _below_1000(n: int, dialect: str, full: bool) -> list[str]:
    """0..999; `full` keeps "không trăm" / "linh" when a higher group precedes."""
    hundreds, rest = divmod(n, 100)
    words: list[str] = []
    if hundreds or full:
        words += [DIGITS[hundreds], "trăm"]
    if rest == 0:
        return words
    if rest < 10 and words:
        words.append(_odd(dialect))
        words.append(DIGITS[rest])
        return words
    return words + _below_100(rest, dialect)


def _below_billion(n: int, dialect: str, full: bool) -> list[str]:
    millions, rest = divmod(n, 1_000_000)
    thousands, units = divmod(rest, 1000)
    words: list[str] = []
    if millions:
        words += _below_1000(millions, dialect, full) + ["triệu"]
    if thousands:
        words += _below_1000(thousands, dialect, full or bool(words)) + [_thousand(dialect)]
    if units:
        words += _below_1000(units, dialect, full or bool(words))
    return words


def _words(n: int, dialect: str, full: bool) -> list[str]:
    if n >= 1_000_000_000:
        high, low = divmod(n, 1_000_000_000)
        words = _words(high, dialect, full) + ["tỷ"]
        return words + (_below_billion(low, dialect, True) if low else [])
    return _below_billion(n, dialect, full)


# Reports repeat their numbers (years, small counts): readings are cached.
@functools.lru_cache(maxsize=4096)
def read_int(n: int, dialect: str = "north") -> str:
    """The cardinal reading of a non-negative integer."""
    if n < 0:
        return "âm " + read_int(-n, dialect)
    if n == 0:
        return DIGITS[0]
    return " ".join(_words(n, dialect, False))


def read_digits(digits: str) -> str:
    """Digit by digit, as for phone numbers: "115" -> "một một năm"."""
    return " ".join(DIGITS[d] for d in map(unicodedata.decimal, digits, repeat(None)) if d is not None)


def read_integer_string(digits: str, dialect: str = "north") -> str:
    """A run of digits as written: cardinal, or digit by digit when too long to be a quantity."""
    if len(digits) > MAX_CARDINAL_DIGITS:
        return read_digits(digits)
    return read_int(int(digits), dialect)


def read_fraction_digits(digits: str, dialect: str = "north") -> str:
    """The part after the decimal comma: leading zeros one by one, then a short number.

    "04" -> "không bốn", "25" -> "hai mươi lăm", "03" -> "không ba";
    four or more significant digits are read one by one.
    """
    stripped = digits.lstrip("0")
    zeros = ["không"] * (len(digits) - len(stripped))
    if not stripped:
        return " ".join(zeros)
    rest = read_int(int(stripped), dialect) if len(stripped) <= 3 else read_digits(stripped)
    return " ".join(zeros + [rest])


_THOUSANDS_DOT = re.compile(r"\d{1,3}(?:\.\d{3})+")
_THOUSANDS_COMMA = re.compile(r"\d{1,3}(?:,\d{3}){2,}")


_DECIMAL_DOT = re.compile(r"\d+\.(?:\d{1,2}|\d{4,})")


@functools.lru_cache(maxsize=4096)
def read_number(text: str, dialect: str = "north", dotted: bool | None = None) -> str:
    """A written number: "215.242", "41,04", "41.04", "1.000.000", "4.0", "1,000,000".

    "." between groups of three digits separates thousands and "," is the
    decimal comma (Vietnamese convention). A single dot before one or two
    digits (or four and more) is a decimal point written the English way
    ("41.04" bốn mươi mốt phẩy không bốn) unless only zeros follow it ("4.0",
    version-like) or `dotted` says the number is a section or version number
    ("mục 2.1"); other dots are read "chấm". `dotted=False` makes a dot
    before zeros a decimal point too (4.0% follows a unit). Commas grouping
    two or more thousands ("1,000,000") are taken as English thousands
    separators.
    """
    if _THOUSANDS_COMMA.fullmatch(text):
        return read_integer_string(text.replace(",", ""), dialect)
    whole, comma, frac = text.partition(",")
    if not dotted and not comma and _DECIMAL_DOT.fullmatch(whole):
        head, _, tail = whole.partition(".")
        if dotted is False or tail.strip("0"):
            return read_integer_string(head, dialect) + " phẩy " + read_fraction_digits(tail, dialect)
    if _THOUSANDS_DOT.fullmatch(whole) and not dotted:
        spoken = read_integer_string(whole.replace(".", ""), dialect)
    elif "." in whole:
        spoken = " chấm ".join(read_integer_string(p, dialect) for p in whole.split(".") if p)
    else:
        spoken = read_integer_string(whole, dialect)
    if comma and frac:
        spoken += " phẩy " + read_fraction_digits(frac, dialect)
    return spoken


def read_ordinal(n: int, dialect: str = "north") -> str:
    """The number after "thứ": 1 "nhất", 4 "tư", others cardinal ("thứ mười bốn")."""
    if n == 1:
        return "nhất"
    if n == 4:
        return "tư"
    return read_int(n, dialect)


def read_month(n: int, dialect: str = "north") -> str:
    """The number after "tháng": April is always "tư"; January "một"."""
    return "tư" if n == 4 else read_int(n, dialect)


_ROMAN = re.compile(r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman_value(token: str) -> int | None:
    """The value of a canonical upper-case Roman numeral, else None."""
    if not token or not _ROMAN.fullmatch(token):
        return None
    total = 0
    for i, c in enumerate(token):
        v = _ROMAN_VALUES[c]
        nxt = _ROMAN_VALUES[token[i + 1]] if i + 1 < len(token) else 0
        total += -v if v < nxt else v
    return total
