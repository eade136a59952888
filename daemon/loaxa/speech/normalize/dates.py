"""Dates and times of day.

Conventions:
- a day and month are said "ngày D tháng M", with "ngày" added unless the
  text already has it (or "mồng"/"mùng") just before: "từ 14/1" -> "từ ngày
  mười bốn tháng một"; April is "tháng tư"; the year is "năm" and a cardinal;
- "d/m - d/m/yyyy" and "25-27/12" are ranges: "... đến ngày ...";
- "8/2021" is "tháng tám năm ..." ("tháng" added unless written); after a
  document word (số, Quyết định...) "30/2021" is "ba mươi năm ...";
- after a house word (rules.yaml: số nhà, ngõ, hẻm...) "12/3" and "12/3/5"
  are house and alley numbers said with "trên", never dates;
- a slash between numbers that cannot be a date is "trên" (35/40), and a
  fraction after "chiếm", "khoảng"... is "phần" (2/3 -> hai phần ba); the
  idiom 24/7 is "hai mươi tư trên bảy";
- 17h00 is "mười bảy giờ"; 7h30, 7g30, 7:30 are "bảy giờ ba mươi phút";
  "17:30:15" adds "giây"; a range of times is "... đến ...".
"""

from __future__ import annotations

import re

from loaxa.speech.normalize.letters import spell
from loaxa.speech.normalize.numbers import read_int, read_month
from loaxa.speech.normalize.rules import rules
from loaxa.speech.normalize.text import Context, word_before

# Every pattern starts with a digit and then looks behind it, so the regex
# engine can skip straight to digits: "(?<!X\d)" after the first digit says
# "no X before this number".
_NOT_AFTER = r"(?<![\w.,/:\-]\d)"
_E = r"(?![\w/]|[.,:]\d)"  # end of a number token
_FULL = r"\d{1,2}(?P<sN>[/.\-])\d{1,2}(?P=sN)\d{4}|\d{1,2}/\d{1,2}"
_TAIL = r"\d?(?P<sN>[/.\-])\d{1,2}(?P=sN)\d{4}|\d?/\d{1,2}"
_DATES = re.compile(
    rf"(?P<x>\d){_NOT_AFTER}"
    rf"(?:(?P<x2>\d?)\s*-\s*(?=\d{{1,2}}/)(?P<a>{_FULL.replace('sN', 's1')})|(?P<rest>{_TAIL.replace('sN', 's2')}))"
    rf"(?:\s*-\s*(?P<b>{_FULL.replace('sN', 's3')}))?{_E}"
)
_MONTH_YEAR = re.compile(rf"(\d{_NOT_AFTER}\d?)/(\d{{4}}){_E}")
_TIMES = re.compile(
    rf"(?P<a>\d{_NOT_AFTER}\d?(?:[hg]\d{{2}}|:\d{{2}}(?::\d{{2}})?|h))"
    r"(?:\s*-\s*(?P<b>\d{1,2}(?:[hg]\d{2}|:\d{2}(?::\d{2})?|h)))?(?![\w]|[.,:]\d)"
)
_TIME_PARTS = re.compile(r"(\d{1,2})[hg:]?(\d{2})?(?::(\d{2}))?")

_HOUSE = re.compile(rf"\d{_NOT_AFTER}\d*[A-Za-z]?(?:/\d+[A-Za-z]?)+(?![\w/])")
_HOUSE_PART = re.compile(r"(\d+)([A-Za-z]?)")

_DAY_WORDS = {"ngày", "mồng", "mùng"}
_DOC_WORDS = {"số", "định", "quyết", "tư", "thị", "văn", "hoạch", "báo", "cáo", "trình", "luật", "lệnh", "án"}
_FRACTION_WORDS = {"lệ", "chiếm", "khoảng", "gần", "hơn", "trên", "dưới", "đạt", "còn", "già", "non"}


def _split_date(text: str) -> tuple[int, int, int | None]:
    parts = re.split(r"[/.\-]", text)
    year = int(parts[2]) if len(parts) == 3 else None
    return int(parts[0]), int(parts[1]), year


def _valid(day: int, month: int) -> bool:
    return 1 <= day <= 31 and 1 <= month <= 12


def _say_date(day: int, month: int, year: int | None, dialect: str) -> str:
    spoken = f"{read_int(day, dialect)} tháng {read_month(month, dialect)}"
    if year is not None:
        spoken += " năm " + read_int(year, dialect)
    return spoken


def _slash_pair(m: re.Match[str], ctx: Context, day: int, month: int) -> str:
    """d/m that is no date: a fraction, "trên", or the idiom 24/7."""
    a, b = read_int(day, ctx.dialect), read_int(month, ctx.dialect)
    if word_before(m.string, m.start()) in _FRACTION_WORDS and 0 < day < month:
        return ctx.keep(f"{a} phần {b}")
    return ctx.keep(f"{a} trên {b}")


def _dates(m: re.Match[str], ctx: Context) -> str:
    if m.group("a"):  # "25-27/12": a day, then the date that gives its month
        d0: int | None = int(m.group("x") + m.group("x2"))
        first = m.group("a")
    else:
        d0, first = None, m.group("x") + m.group("rest")
    day, month, year = _split_date(first)
    second = _split_date(m.group("b")) if m.group("b") else None
    if not _valid(day, month) or (second and not _valid(*second[:2])) or (d0 is not None and not 1 <= d0 <= 31):
        if d0 is None and second is None and year is None:
            return _slash_pair(m, ctx, day, month)
        return m.group(0)
    fraction_like = (day, month) == (24, 7) or (word_before(m.string, m.start()) in _FRACTION_WORDS and day < month)
    if d0 is None and second is None and year is None and fraction_like:
        return _slash_pair(m, ctx, day, month)
    lead = "" if word_before(m.string, m.start()) in _DAY_WORDS else "ngày "
    if d0 is not None:
        spoken = f"{lead}{read_int(d0, ctx.dialect)} đến ngày {_say_date(day, month, year, ctx.dialect)}"
    else:
        spoken = lead + _say_date(day, month, year, ctx.dialect)
    if second is not None:
        spoken += " đến ngày " + _say_date(*second, ctx.dialect)
    return ctx.keep(spoken)


def _month_year(m: re.Match[str], ctx: Context) -> str:
    month, year = int(m.group(1)), int(m.group(2))
    before = word_before(m.string, m.start())
    if before in _DOC_WORDS or not 1 <= month <= 12:
        return ctx.keep(f"{read_int(month, ctx.dialect)} năm {read_int(year, ctx.dialect)}")
    lead = "" if before == "tháng" else "tháng "
    return ctx.keep(f"{lead}{read_month(month, ctx.dialect)} năm {read_int(year, ctx.dialect)}")


def _say_time(text: str, dialect: str) -> str | None:
    m = _TIME_PARTS.fullmatch(text)
    if m is None:
        return None
    hour, minute, second = (int(g) if g else 0 for g in m.groups())
    if hour > 24 or minute > 59 or second > 59:
        return None
    spoken = f"{read_int(hour, dialect)} giờ"
    if minute or second:
        spoken += f" {read_int(minute, dialect)} phút"
    if second:
        spoken += f" {read_int(second, dialect)} giây"
    return spoken


def _times(m: re.Match[str], ctx: Context) -> str:
    first = _say_time(m.group("a"), ctx.dialect)
    second = _say_time(m.group("b"), ctx.dialect) if m.group("b") else ""
    if first is None or second is None:
        return m.group(0)
    return ctx.keep(f"{first} đến {second}" if second else first)


def _house(m: re.Match[str], ctx: Context) -> str:
    """ "số nhà 12/3" -> mười hai trên ba; anything else is left for the date rules."""
    r = rules()
    if not r.ends_with(r.house_words, m.string, m.start()):
        return m.group(0)
    parts = []
    for number, letter in _HOUSE_PART.findall(m.group(0)):
        parts.append(read_int(int(number), ctx.dialect) + (" " + spell(letter) if letter else ""))
    return ctx.keep(" trên ".join(parts))


def date_pass(line: str, ctx: Context) -> str:
    """House numbers, dates, month/year, and times of day (before plain numbers)."""
    if "/" in line:
        line = _HOUSE.sub(lambda m: _house(m, ctx), line)
    if "/" in line or "-" in line or "." in line:
        line = _DATES.sub(lambda m: _dates(m, ctx), line)
        line = _MONTH_YEAR.sub(lambda m: _month_year(m, ctx), line)
    return _TIMES.sub(lambda m: _times(m, ctx), line)
