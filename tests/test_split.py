"""Sentence splitting for streaming: whole sentences, short chunks, honest pauses."""

from __future__ import annotations

import pytest

from loaxa.speech.engine import Sentence
from loaxa.speech.normalize import normalize
from loaxa.speech.split import split_sentences

BASE = 0.25


def texts(sentences: list[Sentence]) -> list[str]:
    return [s.text for s in sentences]


def test_splits_at_sentence_ends_with_the_base_pause() -> None:
    out = split_sentences("Bà con chú ý. Bão số ba đang đến! Đã chuẩn bị chưa? Xin cảm ơn.", pause_s=BASE)
    assert texts(out) == ["Bà con chú ý.", "Bão số ba đang đến!", "Đã chuẩn bị chưa?", "Xin cảm ơn."]
    assert [s.pause_s for s in out[:-1]] == [BASE, BASE, BASE]


def test_a_line_end_is_a_longer_pause_than_a_sentence_end() -> None:
    out = split_sentences("THÔNG BÁO\nBà con chú ý. Xin cảm ơn.\n\nHết.", pause_s=BASE)
    assert texts(out) == ["THÔNG BÁO", "Bà con chú ý.", "Xin cảm ơn.", "Hết."]
    assert out[0].pause_s > out[1].pause_s == BASE
    assert out[2].pause_s == out[0].pause_s


def test_abbreviations_and_decimals_stay_whole() -> None:
    out = split_sentences("Đoàn của TP. Hà Tĩnh về Q. 1 và P. Bến Thành. Mưa 3.5 mm, gió 2,5 m.")
    assert texts(out) == ["Đoàn của TP. Hà Tĩnh về Q. 1 và P. Bến Thành.", "Mưa 3.5 mm, gió 2,5 m."]


def test_sentence_end_after_an_acronym_still_splits() -> None:
    assert len(split_sentences("Đã họp với UBND. Người dân đồng tình.")) == 2


def test_short_sentences_are_not_cut_at_clauses() -> None:
    out = split_sentences("Đề nghị các hộ có mặt; mang theo giấy tờ, khẩu trang.")
    assert texts(out) == ["Đề nghị các hộ có mặt; mang theo giấy tờ, khẩu trang."]


def test_long_sentence_is_cut_at_clause_boundaries_first() -> None:
    clause = "đề nghị các hộ gia đình trong thôn chủ động chằng chống nhà cửa"
    text = f"{clause}; {clause}, {clause}; {clause}."
    out = split_sentences(text, max_chars=140, pause_s=BASE)
    assert " ".join(texts(out)) == text
    assert all(len(s.text) <= 140 for s in out)
    assert out[0].text.endswith(";") and out[0].pause_s == pytest.approx(0.6 * BASE)
    assert out[-1].pause_s == pytest.approx(2 * BASE)


def test_comma_cut_pauses_less_than_clause_cut() -> None:
    clause = "bà con trong thôn cần theo dõi sát diễn biến của cơn bão"
    out = split_sentences(f"{clause}, {clause}, {clause}.", max_chars=120, pause_s=BASE)
    assert out[0].text.endswith(",")
    assert out[0].pause_s == pytest.approx(0.4 * BASE)


def test_a_sentence_without_any_punctuation_is_cut_between_words_evenly() -> None:
    text = " ".join(["hộ gia đình"] * 60)  # 719 characters, no clause boundary
    out = split_sentences(text, max_chars=250)
    assert " ".join(texts(out)) == text
    lengths = [len(s.text) for s in out]
    assert len(out) == 3 and max(lengths) <= 250 and min(lengths) > 200


def test_no_chunk_of_a_normalised_bulletin_is_much_longer_than_the_limit() -> None:
    bulletin = (
        "Đến 17h00 ngày 22/9/2021, toàn tỉnh có 215.242 điện thoại cài Bluezone, chiếm 41,04%, "
        "trong đó TP. Hà Tĩnh có 45.678 máy, TX. Kỳ Anh có 23.456 máy, các huyện còn lại có 146.108 máy, "
        "tăng 2,5% so với tuần trước; đề nghị UBND các xã thực hiện 5K theo Chỉ thị 16/CT-TTg, "
        "liên hệ đường dây nóng 0205.3812.345 khi cần hỗ trợ."
    )
    out = split_sentences(normalize(bulletin))
    assert len(out) >= 3
    assert all(len(s.text) <= 250 for s in out)


def test_decimal_comma_is_not_a_clause_boundary() -> None:
    long = "tăng " + ", ".join(["hai phẩy năm"] * 30) + " và 2,5 phần trăm."
    out = split_sentences(long, max_chars=60)
    assert not any(s.text.startswith("5") for s in out)


def test_empty_text_gives_nothing() -> None:
    assert split_sentences("") == []
    assert split_sentences("  \n \n") == []


def test_pause_scales_with_the_base() -> None:
    out = split_sentences("Một. Hai.", pause_s=0.5)
    assert out[0].pause_s == 0.5
