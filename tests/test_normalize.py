"""Each reading rule of the Vietnamese front-end, as a listener would check it."""

from __future__ import annotations

import pytest

from loaxa.speech.normalize import normalize
from loaxa.speech.normalize.numbers import read_int, read_number, roman_value
from test_normalize_public import canonical


def say(text: str, dialect: str = "north") -> str:
    return canonical(normalize(text, dialect=dialect))


@pytest.mark.parametrize(
    ("n", "north", "south"),
    [
        (0, "không", "không"),
        (10, "mười", "mười"),
        (11, "mười một", "mười một"),
        (14, "mười bốn", "mười bốn"),
        (15, "mười lăm", "mười lăm"),
        (21, "hai mươi mốt", "hai mươi mốt"),
        (24, "hai mươi tư", "hai mươi bốn"),
        (25, "hai mươi lăm", "hai mươi lăm"),
        (30, "ba mươi", "ba mươi"),
        (101, "một trăm linh một", "một trăm lẻ một"),
        (105, "một trăm linh năm", "một trăm lẻ năm"),
        (110, "một trăm mười", "một trăm mười"),
        (1005, "một nghìn không trăm linh năm", "một ngàn không trăm lẻ năm"),
        (2023, "hai nghìn không trăm hai mươi ba", "hai ngàn không trăm hai mươi ba"),
        (1_000_001, "một triệu không trăm linh một", "một triệu không trăm lẻ một"),
        (3_000_000_000, "ba tỷ", "ba tỷ"),
        (10**12, "một nghìn tỷ", "một ngàn tỷ"),
    ],
)
def test_cardinals_follow_the_vietnamese_rules_in_both_dialects(n: int, north: str, south: str) -> None:
    assert read_int(n, "north") == north
    assert read_int(n, "south") == south


def test_thousands_dot_and_decimal_comma() -> None:
    assert say("215.242") == "hai trăm mười lăm nghìn hai trăm bốn mươi hai"
    assert say("12.500 cây") == "mười hai nghìn năm trăm cây"
    assert say("1.000.000") == "một triệu"
    assert say("41,04") == "bốn mươi mốt phẩy không bốn"
    assert say("2,5 triệu") == "hai phẩy năm triệu"
    assert read_number("4.0") == "bốn chấm không"


def test_percent_money_and_units() -> None:
    assert say("đạt 92%") == "đạt chín mươi hai phần trăm"
    assert say("50.000đ") == "năm mươi nghìn đồng"
    assert say("500.000 VNĐ/người") == "năm trăm nghìn đồng một người"
    assert say("3 tỷ đồng") == "ba tỷ đồng"
    assert say("5 km, 1,5 m, 250 m2, 600 m², 3 ha, 20 kg, 100 mm, 5 cm") == (
        "năm ki lô mét một phẩy năm mét hai trăm năm mươi mét vuông sáu trăm mét vuông "
        "ba héc ta hai mươi ki lô gam một trăm mi li mét năm xen ti mét"
    )
    assert say("10°C, gió 100 km/h") == "mười độ xê gió một trăm ki lô mét một giờ"
    assert say("-3°C") == "âm ba độ xê"


def test_ranges_are_read_with_den() -> None:
    assert say("3-5 ngày") == "ba đến năm ngày"
    assert say("25-30°C") == "hai mươi lăm đến ba mươi độ xê"
    assert say("nhiệm kỳ 2021-2026") == (
        "nhiệm kỳ hai nghìn không trăm hai mươi mốt đến hai nghìn không trăm hai mươi sáu"
    )


def test_dates() -> None:
    assert say("ngày 22/9/2021") == "ngày hai mươi hai tháng chín năm hai nghìn không trăm hai mươi mốt"
    assert say("từ 14/1") == "từ ngày mười bốn tháng một"
    assert say("ngày 04/4/2025") == "ngày bốn tháng tư năm hai nghìn không trăm hai mươi lăm"
    assert say("ngày 5-6-2021") == "ngày năm tháng sáu năm hai nghìn không trăm hai mươi mốt"
    assert say("từ tháng 8/2021") == "từ tháng tám năm hai nghìn không trăm hai mươi mốt"
    assert say("từ ngày 01/6 - 22/8/2021") == (
        "từ ngày một tháng sáu đến ngày hai mươi hai tháng tám năm hai nghìn không trăm hai mươi mốt"
    )
    assert say("từ ngày 25-27/12") == "từ ngày hai mươi lăm đến ngày hai mươi bảy tháng mười hai"
    assert say("tháng 4") == "tháng tư"


def test_slashes_that_are_not_dates() -> None:
    assert say("chiếm 2/3 số hộ") == "chiếm hai phần ba số hộ"
    assert say("35/40 hộ") == "ba mươi lăm trên bốn mươi hộ"
    assert say("trực 24/7") == "trực hai mươi tư trên bảy"
    assert say("các xã/phường") == "các xã phường"


def test_times() -> None:
    assert say("lúc 17h00") == "lúc mười bảy giờ"
    assert say("từ 7h30") == "từ bảy giờ ba mươi phút"
    assert say("lúc 17:30") == "lúc mười bảy giờ ba mươi phút"
    assert say("5h sáng, 2h chiều, 7h tối") == "năm giờ sáng hai giờ chiều bảy giờ tối"
    assert say("7 giờ 30") == "bảy giờ ba mươi"
    assert say("từ 7h30-11h00") == "từ bảy giờ ba mươi phút đến mười một giờ"


def test_ordinals_and_weekdays() -> None:
    assert say("thứ 4") == "thứ tư"
    assert say("lần thứ 1") == "lần thứ nhất"
    assert say("kỳ họp thứ 14") == "kỳ họp thứ mười bốn"


def test_phone_numbers_are_read_digit_by_digit() -> None:
    assert say("liên hệ 0912.345.678") == "liên hệ không chín một hai ba bốn năm sáu bảy tám"
    assert say("số 0205 3812 345") == "số không hai không năm ba tám một hai ba bốn năm"
    assert say("gọi ngay 115") == "gọi ngay một một năm"
    assert say("tổng đài 1022") == "tổng đài một không hai hai"
    assert say("gọi 1900 9095") == "gọi một chín không không chín không chín năm"
    assert say("+84 912 345 678") == "cộng tám bốn chín một hai ba bốn năm sáu bảy tám"
    # Written groups become short pauses for the listener.
    assert normalize("gọi 0912.345.678") == "gọi không chín một hai, ba bốn năm, sáu bảy tám"


def test_counting_words_do_not_turn_amounts_into_hotlines() -> None:
    assert say("kêu gọi được 250 triệu đồng") == "kêu gọi được hai trăm năm mươi triệu đồng"
    assert say("có 115 hộ") == "có một trăm mười lăm hộ"


def test_roman_numerals_only_where_they_are_numbers() -> None:
    assert say("khóa XV") == "khóa mười lăm"
    assert say("lần thứ III") == "lần thứ ba"
    assert say("lần thứ IV") == "lần thứ tư"
    assert say("thế kỷ XXI") == "thế kỷ hai mươi mốt"
    assert say("quý I/2024") == "quý một năm hai nghìn không trăm hai mươi tư"
    assert say("Chị Hà Vi ở huyện Di Linh") == "chị hà vi ở huyện di linh"
    assert say("NGHIÊM CẤM VI PHẠM, ĐỔ XI MĂNG") == "nghiêm cấm vi phạm đổ xi măng"
    assert say("hạng C") == "hạng xê"
    assert roman_value("IIII") is None


def test_legal_document_numbers() -> None:
    assert say("Chỉ thị 16/CT-TTg") == "chỉ thị mười sáu"
    assert say("Quyết định số 1234/QĐ-UBND") == "quyết định số một nghìn hai trăm ba mươi tư"
    assert say("Nghị định 49/2024/NĐ-CP") == "nghị định bốn mươi chín năm hai nghìn không trăm hai mươi tư"
    assert say("Nghị quyết số 09-NQ/TW") == "nghị quyết số chín"
    assert say("Thông tư 12/2021") == "thông tư mười hai năm hai nghìn không trăm hai mươi mốt"


def test_abbreviations_from_the_lexicon() -> None:
    assert say("UBND, HĐND, MTTQ") == "ủy ban nhân dân hội đồng nhân dân mặt trận tổ quốc"
    assert say("Sở TT&TT, BCĐ, CNTT") == "sở thông tin và truyền thông ban chỉ đạo công nghệ thông tin"
    assert say("THCS, THPT, BHYT, CCCD") == ("trung học cơ sở trung học phổ thông bảo hiểm y tế căn cước công dân")
    assert say("TP. Hà Tĩnh, TX. Kỳ Anh, Tp Vinh, Q.1") == "thành phố hà tĩnh thị xã kỳ anh thành phố vinh quận một"
    assert say("COVID-19, SARS-CoV-2, F0, F1, 5K") == "cô vít mười chín sát cô vi hai ép không ép một năm ca"


def test_abbreviation_dot_only_before_a_name_or_number() -> None:
    assert normalize("Số 12, P. Bến Thành, Q. 1.") == "Số mười hai, phường Bến Thành, quận một."
    # At the end of a sentence "P." is the letter P and a full stop.
    assert normalize("Tập trung tại khu P.") == "Tập trung tại khu pê."


def test_unknown_capitals_are_spelled_and_shouted_words_lowered() -> None:
    assert say("kênh HTV") == "kênh hát tê vê"
    assert say("ứng dụng ABC") == "ứng dụng a bê xê"
    assert say("THÔNG BÁO KHẨN: Bộ Y tế") == "thông báo khẩn bộ y tế"
    assert say("tổ 3B, tổ 4C, xóm 5A, H5N1") == "tổ ba bê tổ bốn xê xóm năm a hát năm en nờ một"


def test_web_and_mail_addresses() -> None:
    assert say("trang dichvucong.gov.vn.") == "trang dichvucong chấm gov chấm vn"
    assert say("gửi vanphong@hatinh.gov.vn") == "gửi vanphong a còng hatinh chấm gov chấm vn"
    assert say("https://www.hatinh.gov.vn/tin-tuc") == ("www chấm hatinh chấm gov chấm vn gạch chéo tin gạch ngang tuc")


def test_ordinary_text_passes_through_unchanged() -> None:
    text = "Bà con chú ý giữ gìn vệ sinh chung và không thả rông gia súc."
    assert normalize(text) == text
    text = "Ông Mười ở xóm Bến Tấn vừa ủng hộ ba tấn gạo, trị giá năm triệu đồng!"
    assert normalize(text) == text


def test_sentence_punctuation_is_kept_for_pauses() -> None:
    assert normalize("Sáng 15/8, xã tiêm mũi 3. Đề nghị bà con có mặt; xin cảm ơn!") == (
        "Sáng ngày mười lăm tháng tám, xã tiêm mũi ba. Đề nghị bà con có mặt; xin cảm ơn!"
    )


def test_lines_are_kept_apart() -> None:
    assert normalize("THÔNG BÁO\nNgày 1/6\n\nHết") == "thông báo\nNgày một tháng sáu\n\nHết"


def test_south_dialect_switch() -> None:
    assert say("1.005 hộ, 24 giờ", "south") == "một ngàn không trăm lẻ năm hộ hai mươi bốn giờ"
    assert say("1.005 hộ, 24 giờ", "north") == "một nghìn không trăm linh năm hộ hai mươi tư giờ"


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="dialect"):
        normalize("1", dialect="central")


def test_unit_before_a_full_stop_is_not_an_abbreviation() -> None:
    # "h." before a capital must stay the end of "km/h", not become "huyện".
    assert say("tốc độ 15-20 km/h. Vùng gần tâm bão") == (
        "tốc độ mười lăm đến hai mươi ki lô mét một giờ vùng gần tâm bão"
    )
    assert say("xã Thạch Kim, H. Lộc Hà") == "xã thạch kim huyện lộc hà"


def test_hyphenated_codes_are_spelled_with_long_digit_runs_one_by_one() -> None:
    assert say("tàu cá NA-90123-TS") == "tàu cá en nờ a chín không một hai ba tê ét xì"


def test_stray_digits_are_still_read() -> None:
    assert say(".5 và ,7") == "năm và bảy"


def test_numbers_listed_after_a_hotline_are_hotlines_too() -> None:
    assert say("gọi 113, 114 hoặc 115") == "gọi một một ba một một bốn hoặc một một năm"
    assert say("liên hệ 0912.345.678 hoặc 1022") == (
        "liên hệ không chín một hai ba bốn năm sáu bảy tám hoặc một không hai hai"
    )
    assert say("ngày 5/6 và 115 hộ") == "ngày năm tháng sáu và một trăm mười lăm hộ"


def test_heading_numbers_and_bullets() -> None:
    assert normalize("1. Thời gian: 7h30") == "một, Thời gian: bảy giờ ba mươi phút"
    assert normalize("II. NHIỆM VỤ TRỌNG TÂM") == "hai, nhiệm vụ trọng tâm"
    assert normalize("- Các hộ chủ động phòng tránh.") == "Các hộ chủ động phòng tránh."
