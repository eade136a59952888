"""Quantities: numbers with their units, money, percentages, ranges; Roman numerals.

Conventions:
- "3-5 ngày" and "25-30°C" are ranges: "ba đến năm ngày", "hai mươi lăm đến
  ba mươi độ xê" ("từ" is not added);
- a slash after a quantity's unit or counter word (rules.yaml) means "per"
  and is said "một", every slash of a chain: "km/h" -> "ki lô mét một giờ",
  "1.263.600 đồng/người/năm" -> "... đồng một người một năm", "6,5 tấn/ha"
  -> "... tấn một héc ta"; after other words ("5 xã/phường") it is silent;
- a hyphen or dash between numbers is a range whatever its spacing ("5 -7",
  "2021 – 2022"); "-5°C" (a minus sign before a lone number) is "âm năm độ
  xê"; after a name that is not a Vietnamese word ("MERS -2") it joins;
- a dot before one or two digits is a decimal point ("41.04%"), except after
  a section word ("mục 2.1", "công nghiệp 4.0": "chấm");
- "thứ 4" is "thứ tư", "thứ 1" "thứ nhất"; "tháng 4" is "tháng tư";
- a number of three or more digits starting with 0 is said digit by digit;
- Roman numerals are read as numbers after a word that counts them
  (khóa XV, lần thứ III, thế kỷ XXI, quý II, chương IV, Đại hội XIII), and
  II, III, IV, XV... also without one; never VI or XI without one (they are
  Vietnamese words: "VI PHẠM", "XI MĂNG"), never mixed case (Vi, Di).
"""

from __future__ import annotations

import re

from loaxa.speech.normalize.letters import UPPER, is_vietnamese_syllable
from loaxa.speech.normalize.numbers import read_digits, read_int, read_month, read_number, read_ordinal, roman_value
from loaxa.speech.normalize.rules import rules
from loaxa.speech.normalize.text import Context, word_before

UNITS = {
    "%": "phần trăm",
    "°C": "độ xê",
    "ºC": "độ xê",
    "° C": "độ xê",
    "oC": "độ xê",
    "°F": "độ ép",
    "°": "độ",
    "km²": "ki lô mét vuông",
    "km2": "ki lô mét vuông",
    "km": "ki lô mét",
    "Km": "ki lô mét",
    "KM": "ki lô mét",
    "m²": "mét vuông",
    "m2": "mét vuông",
    "m³": "mét khối",
    "m3": "mét khối",
    "m": "mét",
    "cm": "xen ti mét",
    "mm": "mi li mét",
    "ha": "héc ta",
    "kg": "ki lô gam",
    "Kg": "ki lô gam",
    "KG": "ki lô gam",
    "g": "gam",
    "mg": "mi li gam",
    "ml": "mi li lít",
    "l": "lít",
    "kW": "ki lô oát",
    "kWh": "ki lô oát giờ",
    "MW": "mê ga oát",
    "kV": "ki lô vôn",
    "đ": "đồng",
    "đồng": "đồng",
    "VNĐ": "đồng",
    "VND": "đồng",
    "vnđ": "đồng",
    "USD": "đô la mỹ",
    "tr": "triệu",
    "k": "nghìn",
}
# Units that only make sense after "/": km/h, m/s.
PER_UNITS = {**UNITS, "h": "giờ", "s": "giây", "giờ": "giờ"}
_MULTIPLIERS = ("nghìn", "ngàn", "triệu", "tỷ", "tỉ")

# The first digit comes first and is then checked for what precedes it, so
# the regex engine can skip straight to digits.
_NUM = r"\d(?<![\w.,/:\-]\d)(?:\d{0,2}(?:\.\d{3})+(?:,\d+)?|\d{0,2}(?:,\d{3}){2,}|\d*(?:[.,]\d+)?)"
_NUM_B = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d{1,3}(?:,\d{3}){2,}|\d+(?:[.,]\d+)?"
_END_NUM = r"(?![.,]?\d)"
_UNIT = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
_QUANTITY = re.compile(
    rf"(?P<a>{_NUM}){_END_NUM}"
    rf"(?:\s?(?P<ua>{_UNIT})(?![\w]))?"
    rf"(?:\s*-\s*(?P<b>{_NUM_B}){_END_NUM})?"
    rf"(?:\s(?P<mult>{'|'.join(_MULTIPLIERS)}))?"
    rf"(?:\s?(?P<unit>{_UNIT}))?"
    r"(?:\s(?P<counter>[^\W\d_]+(?:\s[^\W\d_]+)?)(?=\s?/))?"
    # A word inside a chain may be two ("đồng/cơ sở/tháng"); the last one is one word.
    r"(?:(?P<per>(?:\s?/\s?[^\W\d_]+(?:(?<=m)[23²³])?(?:\s[^\W\d_]+(?=\s?/))?)+)(?![\w])"
    r"|(?P<per_n>/)(?=\d)|(?![\w]))"
)
# A minus sign right before a number, after a space or bracket; a hyphen
# after a number is a range, whatever the spaces ("5 -7 ngày").
_MINUS = re.compile(r"-(?<![^\s(]-)(?=\d)")
_BEFORE_MINUS = re.compile(rf"(?:(\d)|([{UPPER}][^\W\d_]*))\s*$")


def _minus(m: re.Match[str]) -> str:
    before = _BEFORE_MINUS.search(m.string, max(0, m.start() - 30), m.start())
    if before is None:
        return "âm "
    if before.group(1) or not is_vietnamese_syllable(before.group(2)):
        return " " if before.group(2) else "-"  # a range, or a name and its number
    return "âm "


def _say(number: str, ctx: Context, before: str, alone: bool, dotted: bool | None = None) -> str:
    if number.isdecimal():
        if alone and before == "thứ":
            return read_ordinal(int(number), ctx.dialect)
        if alone and before == "tháng" and 1 <= int(number) <= 12:
            return read_month(int(number), ctx.dialect)
        if len(number) >= 3 and number.startswith("0"):
            return read_digits(number)
    return read_number(number, ctx.dialect, dotted)


def _per(chain: str) -> list[str]:
    """ "/người/năm" -> một người một năm; "/24 giờ" -> trên (the number follows)."""
    if chain == "/":
        return ["trên"]
    words = []
    for unit in chain.split("/")[1:]:
        unit = unit.strip()
        words += ["một", PER_UNITS.get(unit, unit)]
    return words


def _quantity(m: re.Match[str], ctx: Context) -> str:
    a, ua, b, mult, unit_after, counter, per, per_n = m.group("a", "ua", "b", "mult", "unit", "counter", "per", "per_n")
    per = per or per_n
    unit = unit_after or ua
    dotted: bool | None = None
    if "." in a:
        dotted = True if rules().ends_with(rules().dotted_words, m.string, m.start()) else None
        dotted = False if unit and dotted is None else dotted
    alone = not (b or unit)
    # Only a lone whole number reads by the word before it (thứ 4, tháng 4).
    before = word_before(m.string, m.start()) if alone and a.isdecimal() else ""
    words = [_say(a, ctx, before, alone, dotted)]
    if ua:
        words.append(UNITS[ua])
    if b:
        words += ["đến", _say(b, ctx, "", False, False if unit else None)]
    if mult:
        words.append(mult)
    if unit_after:
        words.append(UNITS[unit_after])
    if counter:
        words.append(counter)
    if per:
        # Per only after a unit or a counting word: "5 xã/phường" is a list.
        target = per.split("/")[1] if not per_n else ""
        counts = unit or mult or (counter and rules().is_per(counter, target))
        if per_n:
            words += ["trên"] if counts else []  # "50 mm/24 giờ"; "2021/2022" keeps a silent slash
        elif counts or not (counter or b):
            words += _per(per)
        else:
            words += per.split("/")[1:]  # "5 xã/phường": a silent slash
    return ctx.keep(" ".join(words))


def quantity_pass(line: str, ctx: Context) -> str:
    """Every number still written in digits, with what measures it."""
    if "-" in line:
        line = _MINUS.sub(_minus, line)
    return _QUANTITY.sub(lambda m: _quantity(m, ctx), line)


_DIGIT_RUN = re.compile(r"\d+")


def leftover_pass(line: str, ctx: Context) -> str:
    """Digits no rule claimed (".5", odd punctuation): never left for the voice to guess."""
    return _DIGIT_RUN.sub(lambda m: f" {ctx.keep(_say(m.group(0), ctx, '', False))} ", line)


_ROMAN_TOKEN = re.compile(r"([IVXLCDM](?<![\w\-][IVXLCDM])[IVXLCDM]*)(?:/(\d{4}))?(?![\w\-])")
_ROMAN_CONTEXT = {
    "khóa",
    "khoá",
    "thứ",
    "kỷ",
    "kỉ",
    "quý",
    "chương",
    "phần",
    "mục",
    "đợt",
    "kỳ",
    "kì",
    "tập",
    "hạng",
    "loại",
    "nhóm",
    "vùng",
    "khu",
    "hội",
    "lục",
    "cấp",
    "độ",
    "đoạn",
    "bậc",
    "lần",
    "phiên",
}
_ROMAN_ALONE = re.compile(r"[IVX]{2,}")
_ROMAN_WORDS = {"VI", "XI"}


def _roman(m: re.Match[str], ctx: Context) -> str:
    token = m.group(1)
    value = roman_value(token)
    if value is None:
        return m.group(0)
    before = word_before(m.string, m.start())
    in_context = before in _ROMAN_CONTEXT and (len(token) > 1 or token in "IVX")
    if not in_context and not (_ROMAN_ALONE.fullmatch(token) and token not in _ROMAN_WORDS):
        return m.group(0)
    spoken = read_ordinal(value, ctx.dialect) if before == "thứ" else read_int(value, ctx.dialect)
    if m.group(2):
        spoken += " năm " + read_int(int(m.group(2)), ctx.dialect)
    return ctx.keep(spoken)


def roman_pass(line: str, ctx: Context) -> str:
    """Roman numerals where a Vietnamese reader says a number."""
    return _ROMAN_TOKEN.sub(lambda m: _roman(m, ctx), line)
