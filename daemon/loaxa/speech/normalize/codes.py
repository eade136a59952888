"""Numbers that are not quantities: legal document numbers, phone numbers, codes.

Conventions:
- a document number is said by its serial, then "năm" and the year if it has
  one; the issuer code is never said, with or without spaces around the
  slash: "16/CT-TTg" -> "mười sáu", "1465 /STTTT-BCVT" -> "một nghìn bốn
  trăm sáu mươi lăm", "49/2024/NĐ-CP" -> "bốn mươi chín năm hai nghìn không
  trăm hai mươi tư";
- a phone number (0 or +84 and 9 to 11 digits, grouped by dots, spaces or
  hyphens) is said digit by digit with a short pause between the written
  groups; so is a 1800/1900 number, and any number of three or more digits
  right after "gọi", "tổng đài", "đường dây nóng", "hotline", "điện thoại"...
  (115, 1022); an emergency number (rules.yaml: 113, 114, 115...) is one
  when a service word comes earlier in its sentence ("gọi ngay cho Trung tâm
  cấp cứu 115"), unless a noun follows ("cấp cứu 115 trường hợp");
- a range of codes is said with "đến": "F0-F2" -> "ép không đến ép hai";
- a token mixing letters and digits (1A, 3B, F0, H5N1, QL1A, NA-90123-TS) is
  said piece by piece: letters as a lexicon entry or by their Vietnamese
  names, up to three digits as a number, longer runs digit by digit.
"""

from __future__ import annotations

import re

from loaxa.speech.normalize.letters import UPPER, spell
from loaxa.speech.normalize.numbers import read_digits, read_int
from loaxa.speech.normalize.rules import rules
from loaxa.speech.normalize.text import Context, word_before

# The issuer after a spaced slash must start with two capitals ("1465 /STTTT"),
# so "2 lần / Ngày" stays a quantity.
_DOC = re.compile(
    r"(\d(?<![\w/.,]\d)\d{0,4})(?:\s?/\s?((?:19|20)\d{2}))?"
    r"(?:/[A-ZĐ][\wĐđ]*|\s/\s?[A-ZĐ]{2}[\wĐđ]*|/\s[A-ZĐ]{2}[\wĐđ]*|\s?-\s?[A-ZĐ]+(?:/[A-ZĐ][\wĐđ]*)+)"
    r"(?:\s?[-&.]\s?[A-ZĐ][\wĐđ]*|[-&.][\wĐđ]+)*(?![\w/])"
)


def _doc(m: re.Match[str], ctx: Context) -> str:
    spoken = read_int(int(m.group(1)), ctx.dialect)
    if m.group(2):
        spoken += " năm " + read_int(int(m.group(2)), ctx.dialect)
    return ctx.keep(spoken)


def doc_pass(line: str, ctx: Context) -> str:
    """Chỉ thị 16/CT-TTg, Quyết định số 1234/QĐ-UBND, Nghị quyết 09-NQ/TW."""
    if "/" not in line and "-" not in line:
        return line
    return _DOC.sub(lambda m: _doc(m, ctx), line)


# Each starts with a literal, then checks what precedes it (fast to scan for).
_PHONE = re.compile(r"(?:\+(?<![\w.,/+]\+)84[ .]?|0(?<![\w.,/+]0))\d+(?:[. -]\d+)*(?![\w])")
_FREEPHONE = re.compile(r"1(?<![\w.,/]1)[89]00(?:[. -]?\d{2,4}){1,3}(?![\w])")
_SERVICE_NUMBER = re.compile(r"\d(?<![\w.,/]\d)\d{2,}(?:[. -]\d+)*(?![\w])")
_KEYWORD_BEFORE = re.compile(
    r"(?<!\w)(?i:(?<!kêu )gọi(?: ngay| điện)?|tổng đài|đường dây nóng|hotline|điện thoại|"
    r"số máy|sđt|đt(?=\s*:)|fax|nhắn tin(?: đến| tới)?|quay số|bấm số|đầu số|liên hệ(?: qua)? số)"
    r"(?:\s+(?:số|là|theo số|đến số|tới số))?\s*:?\s*$"
)
# The words _KEYWORD_BEFORE can end with: a cheap test before the regex.
_KEYWORD_LAST = frozenset(["gọi", "ngay", "điện", "đài", "nóng", "hotline", "thoại", "máy", "sđt", "fax", "tin"])
_KEYWORD_LAST |= {"đến", "tới", "số", "là"}
_LISTED_AFTER = re.compile(r"(\ue000[^\ue001]*\ue001)\s*(?:,|hoặc|và|/|-)\s*$")
_LIST_JOIN = re.compile(r"\s*(?:,|hoặc|và|/|-)\s*")
_GROUP_SPLIT = re.compile(r"[. -]")


def _say_groups(groups: list[str]) -> str:
    return ", ".join(read_digits(g) for g in groups if g)


def _fit(groups: list[str], limit: int = 11) -> list[str]:
    """The leading written groups that still fit one phone number."""
    kept: list[str] = []
    count = 0
    for g in groups:
        if count + len(g) > limit:
            break
        kept.append(g)
        count += len(g)
    return kept


def _keep_phone(ctx: Context, spoken: str) -> str:
    token = ctx.keep(spoken)
    ctx.phones.add(token)
    return token


def _digits_then_rest(ctx: Context, groups: list[str], kept: list[str], prefix: str = "") -> str:
    spoken = ", ".join(filter(None, [prefix, _say_groups(kept)]))
    rest = groups[len(kept) :]
    return _keep_phone(ctx, spoken) + (" " + " ".join(rest) if rest else "")


def _phone(m: re.Match[str], ctx: Context) -> str:
    text = m.group(0)
    prefix = ""
    if text.startswith("+84"):
        prefix, text = "cộng tám bốn", text[3:].strip(" .")
    groups = _GROUP_SPLIT.split(text)
    kept = _fit(groups, 10 if prefix else 11)
    count = sum(map(len, kept)) + (1 if prefix else 0)
    if not 9 <= count <= 11:
        return m.group(0)
    return _digits_then_rest(ctx, groups, kept, prefix)


def _freephone(m: re.Match[str], ctx: Context) -> str:
    groups = _GROUP_SPLIT.split(m.group(0))
    if sum(map(len, groups)) not in (8, 10):
        return m.group(0)
    return _keep_phone(ctx, _say_groups(groups))


def _listed_after_phone(m: re.Match[str], ctx: Context, last_end: int) -> bool:
    """ "gọi 113, 114 hoặc 115": a number listed right after a phone number is one too."""
    if last_end >= 0 and _LIST_JOIN.fullmatch(m.string, last_end, m.start()):
        return True
    listed = _LISTED_AFTER.search(m.string, max(0, m.start() - 20), m.start())
    return listed is not None and listed.group(1) in ctx.phones


_CLAUSE_START = re.compile(r".*[.;!?]\s", re.DOTALL)
_KEU_GOI = re.compile(r"(?i:kêu|lời)\s+$")


_NEXT_LOWER_WORD = re.compile(rf"\s*(?![{UPPER}])[^\W\d_]")


def _emergency(m: re.Match[str]) -> bool:
    """113, 114, 115 after a service word in the same sentence, unless a noun follows (a count)."""
    r = rules()
    if m.group(0) not in r.service_numbers:
        return False
    if _NEXT_LOWER_WORD.match(m.string, m.end()) and not r.service_followers.match(m.string, m.end()):
        return False
    start = max(0, m.start() - 120)
    clause = _CLAUSE_START.match(m.string, start, m.start())
    start = clause.end() if clause else start
    for word in r.service_words.finditer(m.string, start, m.start()):
        if not (word.group(0).lower() == "gọi" and _KEU_GOI.search(m.string, max(0, word.start() - 6), word.start())):
            return True
    return False


def phone_pass(line: str, ctx: Context) -> str:
    """Phone numbers, free-phone numbers and hotlines, digit by digit."""
    line = _PHONE.sub(lambda m: _phone(m, ctx), line)
    line = _FREEPHONE.sub(lambda m: _freephone(m, ctx), line)
    last_end = -1

    def hotline(m: re.Match[str]) -> str:
        nonlocal last_end
        keyword = None
        start = m.start()
        if word_before(m.string, start) in _KEYWORD_LAST or m.string[max(0, start - 4) : start].rstrip().endswith(":"):
            keyword = _KEYWORD_BEFORE.search(m.string, max(0, start - 40), start)
        if keyword is None and not _listed_after_phone(m, ctx, last_end) and not _emergency(m):
            return m.group(0)
        last_end = m.end()
        groups = _GROUP_SPLIT.split(m.group(0))
        return _digits_then_rest(ctx, groups, _fit(groups) or groups[:1])

    return _SERVICE_NUMBER.sub(hotline, line)


_ALNUM = re.compile(r"(?<![\w\-])(?=[\w\-]*\d)(?=[\w\-]*[^\W\d_])[^\W_]+(?:-[^\W_]+)*(?![\w\-])")
_ANY_DIGIT = re.compile(r"\d")
_RUN = re.compile(r"\d+|[^\W\d_\u00b2\u00b3\u00b9\u2070-\u209f]+")  # superscripts are no letters


def read_code(token: str, ctx: Context) -> str:
    """A letter-digit code: a lexicon entry in any case (f0 as F0), else piece by piece."""
    spoken = ctx.lexicon.lookup(token)
    if spoken is None:
        spoken = ctx.lexicon.lookup(token.upper())
    if spoken is not None:
        return spoken
    words = []
    runs = _RUN.findall(token)
    for i, run in enumerate(runs):
        if run[0].isdecimal():
            short = len(run) <= 3 and not (len(run) > 1 and run.startswith("0"))
            words.append(read_int(int(run), ctx.dialect) if short else read_digits(run))
            continue
        entry = ctx.lexicon.entry(run)
        if entry is not None:
            number_follows = i + 1 < len(runs) and runs[i + 1][0].isdecimal()
            words.append(entry.before_number if entry.before_number and number_follows else entry.say)
        else:
            # Short letter runs are letters in any case (f0, 12a1); longer lower-case ones are words.
            words.append(spell(run) if run.isupper() or len(run) <= 2 else run)
    return " ".join(words)


def alnum_pass(line: str, ctx: Context) -> str:
    """1A, 3B, F0, H5N1: letters and digits in one token."""
    if not _ANY_DIGIT.search(line):
        return line
    return _ALNUM.sub(lambda m: ctx.keep(read_code(m.group(0), ctx)), line)


# F0-F2, F1 – F3, A1-A3: the same letters on both sides of a dash.
_CODE_RANGE = re.compile(r"(?<![\w\-])([^\W\d_]{1,3})(\d{1,3})\s*-\s*(?i:\1)(\d{1,3})(?![\w\-])")


# The cheap test first: _CODE_RANGE starts with a letter and is tried at every one.
_CODE_RANGE_HINT = re.compile(r"\d\s*-\s*[^\W\d_]{1,3}\d")


def code_range_pass(line: str, ctx: Context) -> str:
    """A range of codes, before the lexicon reads each side alone."""
    if "-" not in line or _CODE_RANGE_HINT.search(line) is None:
        return line

    def say(m: re.Match[str]) -> str:
        letters = m.group(1)
        first, last = read_code(letters + m.group(2), ctx), read_code(letters + m.group(3), ctx)
        return ctx.keep(f"{first} đến {last}")

    return _CODE_RANGE.sub(say, line)
