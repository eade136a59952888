"""Issue 16, spoken Vietnamese round 2: the ten classes of error found on real provincial text.

Each test names the class it guards; the cases vary spacing, dash kind, units
and context so that the class is fixed, not one example.
"""

from __future__ import annotations

import pytest

from loaxa.speech.normalize import normalize
from test_normalize import say

YEAR_2021 = "hai nghìn không trăm hai mươi mốt"
YEAR_2022 = "hai nghìn không trăm hai mươi hai"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("năm 2021 -2022", f"năm {YEAR_2021} đến {YEAR_2022}"),
        ("năm học 2021 – 2022", f"năm học {YEAR_2021} đến {YEAR_2022}"),
        ("niên vụ 2021—2022", f"niên vụ {YEAR_2021} đến {YEAR_2022}"),
        ("cách ly 5 -7 ngày", "cách ly năm đến bảy ngày"),
        ("từ 10 - 15 ngày", "từ mười đến mười lăm ngày"),
        ("khoảng 20 –25 người", "khoảng hai mươi đến hai mươi lăm người"),
        ("nhiệt độ 10 - 12°C", "nhiệt độ mười đến mười hai độ xê"),
        ("số 12 - 14 Trần Phú", "số mười hai đến mười bốn trần phú"),
    ],
)
def test_class1_a_dash_between_numbers_is_a_range_whatever_its_spacing(text: str, spoken: str) -> None:
    assert say(text) == spoken


@pytest.mark.parametrize(
    "text",
    ["Covid-19", "Covid -19", "Covid - 19", "Covid – 19", "COVID -19", "covid—19", "Covid- 19"],
)
def test_class1_covid_19_is_one_name_with_any_dash(text: str) -> None:
    assert say(f"dịch {text} đã được kiểm soát") == "dịch cô vít mười chín đã được kiểm soát"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("có nơi -3°C", "có nơi âm ba độ xê"),
        ("nhiệt độ xuống -5 độ", "nhiệt độ xuống âm năm độ"),
        ("từ -3 đến 2°C", "từ âm ba đến hai độ xê"),
        ("tăng trưởng -2,5% so với cùng kỳ", "tăng trưởng âm hai phẩy năm phần trăm so với cùng kỳ"),
        ("Thời tiết: -1°C", "thời tiết âm một độ xê"),
    ],
)
def test_class1_am_only_where_a_minus_is_meant(text: str, spoken: str) -> None:
    assert say(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("các trường hợp F0-F2", "các trường hợp ép không đến ép hai"),
        ("các ca F1 – F3", "các ca ép một đến ép ba"),
        ("nhóm f1-f2", "nhóm ép một đến ép hai"),
        ("phòng A1 - A3", "phòng a một đến a ba"),
    ],
)
def test_class1_ranges_of_codes(text: str, spoken: str) -> None:
    assert say(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("uống 2 lần/ngày", "uống hai lần một ngày"),
        ("tiêm 2 mũi/người, 1 lần / tuần", "tiêm hai mũi một người một lần một tuần"),
        (
            "mức hỗ trợ 1.263.600 đồng/người/năm",
            "mức hỗ trợ một triệu hai trăm sáu mươi ba nghìn sáu trăm đồng một người một năm",
        ),
        ("2 triệu đồng/hộ/tháng", "hai triệu đồng một hộ một tháng"),
        ("50.000 đồng/cơ sở/tháng", "năm mươi nghìn đồng một cơ sở một tháng"),
        ("năng suất 6,5 tấn/ha", "năng suất sáu phẩy năm tấn một héc ta"),
        ("55 tạ/ha", "năm mươi lăm tạ một héc ta"),
        ("thả 3-4 con/m2", "thả ba đến bốn con một mét vuông"),
        ("mật độ 40 cây/m²", "mật độ bốn mươi cây một mét vuông"),
        ("giá 7.500 đồng/kg", "giá bảy nghìn năm trăm đồng một ki lô gam"),
        ("xe buýt 30 phút/chuyến, 6 chuyến/ngày", "xe buýt ba mươi phút một chuyến sáu chuyến một ngày"),
        ("lượng mưa 50 mm/24 giờ", "lượng mưa năm mươi mi li mét trên hai mươi tư giờ"),
        ("4 lít/người/ngày đêm", "bốn lít một người một ngày đêm"),
        ("bố trí 20 học sinh/lớp", "bố trí hai mươi học sinh một lớp"),
        ("20 cán bộ/buổi, 15 hộ nghèo/năm", "hai mươi cán bộ một buổi mười lăm hộ nghèo một năm"),
    ],
)
def test_class2_a_slash_after_a_counter_or_unit_is_per(text: str, spoken: str) -> None:
    assert say(text) == spoken


def test_class2_a_slash_after_other_words_stays_silent() -> None:
    assert say("5 xã/phường tham gia") == "năm xã phường tham gia"
    assert say("12 thôn/tổ dân phố") == "mười hai thôn tổ dân phố"
    assert say("các thôn/xóm") == "các thôn xóm"
    assert say("năm học 2021/2022") == f"năm học {YEAR_2021} {YEAR_2022}"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("số nhà 12/3 đường Trần Phú", "số nhà mười hai trên ba đường trần phú"),
        ("nhà số 7/2", "nhà số bảy trên hai"),
        ("ngõ 45/7 phố Huế", "ngõ bốn mươi lăm trên bảy phố huế"),
        ("kiệt 15/2/4", "kiệt mười lăm trên hai trên bốn"),
        ("hẻm 34/12B", "hẻm ba mươi tư trên mười hai bê"),
        ("Địa chỉ: 25/4 Nguyễn Du", "địa chỉ hai mươi lăm trên bốn nguyễn du"),
        ("tiếp nhận tại số 12/3 đường Lê Lợi", "tiếp nhận tại số mười hai trên ba đường lê lợi"),
    ],
)
def test_class2_house_numbers_are_not_dates(text: str, spoken: str) -> None:
    assert say(text) == spoken


def test_class2_a_date_after_other_words_is_still_a_date() -> None:
    assert say("từ 12/3 đến nay") == "từ ngày mười hai tháng ba đến nay"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("đạt 41.04%", "đạt bốn mươi mốt phẩy không bốn phần trăm"),
        ("giảm còn 3.05%", "giảm còn ba phẩy không năm phần trăm"),
        ("lạm phát 0.5%", "lạm phát không phẩy năm phần trăm"),
        ("diện tích 1.5 ha", "diện tích một phẩy năm héc ta"),
        ("sâu 12.08 m", "sâu mười hai phẩy không tám mét"),
        ("đạt 15.6 tỷ đồng", "đạt mười lăm phẩy sáu tỷ đồng"),
        ("tăng 2.5 lần", "tăng hai phẩy năm lần"),
        ("khoảng 2.5-3.5 m", "khoảng hai phẩy năm đến ba phẩy năm mét"),
        ("điểm trung bình 7.5.", "điểm trung bình bảy phẩy năm"),
    ],
)
def test_class3_a_dot_before_one_or_two_digits_is_a_decimal_point(text: str, spoken: str) -> None:
    assert say(text) == spoken


def test_class3_thousands_and_section_numbers_keep_their_dots() -> None:
    assert say("215.242 người") == "hai trăm mười lăm nghìn hai trăm bốn mươi hai người"
    assert say("mục 2.1 của kế hoạch") == "mục hai chấm một của kế hoạch"
    assert say("tiêu chí số 17.1") == "tiêu chí số mười bảy chấm một"
    assert say("khoản 3.2 Điều 5") == "khoản ba chấm hai điều năm"
    assert say("phiên bản 2.15") == "phiên bản hai chấm mười lăm"
    assert say("công nghiệp 4.0") == "công nghiệp bốn chấm không"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("P.V Nguyễn Văn An", "phóng viên nguyễn văn an"),
        ("PV Hà Linh", "phóng viên hà linh"),
        ("Đài PT&TH tỉnh", "đài phát thanh và truyền hình tỉnh"),
        ("Đài PTTH huyện", "đài phát thanh truyền hình huyện"),
        ("Đài PT-TH tỉnh, Đài PT - TH huyện", "đài phát thanh truyền hình tỉnh đài phát thanh truyền hình huyện"),
        ("trường PTTH Lê Lợi", "trường phổ thông trung học lê lợi"),
        ("toàn thể CCVC và CBCCVC", "toàn thể công chức viên chức và cán bộ công chức viên chức"),
        ("Cục THH", "cục tin học hóa"),
        ("văn phòng BTTTT", "văn phòng bộ thông tin và truyền thông"),
        ("Cổng TTĐT huyện", "cổng thông tin điện tử huyện"),
        ("VP UBND huyện", "văn phòng ủy ban nhân dân huyện"),
        ("KT. GIÁM ĐỐC", "ký thay giám đốc"),
        ("TM. UBND XÃ", "thay mặt ủy ban nhân dân xã"),
        ("TL. CHỦ TỊCH", "thừa lệnh chủ tịch"),
        ("QL1A, QL.12A và QL 8", "quốc lộ một a quốc lộ mười hai a và quốc lộ tám"),
        ("ứng dụng AI", "ứng dụng ây ai"),
        ("công nghệ IoT, iot", "công nghệ ai ô ti ai ô ti"),
        ("đèn LED, đèn led", "đèn lét đèn lét"),
        ("các ca f0, f1 và F2", "các ca ép không ép một và ép hai"),
    ],
)
def test_class4_abbreviations_of_provincial_text(text: str, spoken: str) -> None:
    assert say(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("BCH quân sự xã", "ban chỉ huy quân sự xã"),
        ("BCH Quân sự huyện", "ban chỉ huy quân sự huyện"),
        ("BCH QS huyện", "ban chỉ huy quân sự huyện"),
        ("BCH phòng, chống thiên tai", "ban chỉ huy phòng chống thiên tai"),
        ("BCH Đoàn xã", "ban chấp hành đoàn xã"),
        ("BCH Đảng ủy xã", "ban chấp hành đảng ủy xã"),
        ("BCH Hội Nông dân", "ban chấp hành hội nông dân"),
    ],
)
def test_class4_bch_reads_by_the_word_after_it(text: str, spoken: str) -> None:
    assert say(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("sửa chữa ĐT.549", "sửa chữa đường tỉnh năm trăm bốn mươi chín"),
        ("tuyến ĐT 549", "tuyến đường tỉnh năm trăm bốn mươi chín"),
        ("tuyến ĐT549", "tuyến đường tỉnh năm trăm bốn mươi chín"),
        ("TL.3 và TL 8", "tỉnh lộ ba và tỉnh lộ tám"),
        ("số ĐT của xã", "số điện thoại của xã"),
        ("ĐT: 0912.345.678", "điện thoại không chín một hai ba bốn năm sáu bảy tám"),
    ],
)
def test_class4_dt_before_a_road_number_is_duong_tinh(text: str, spoken: str) -> None:
    assert say(text) == spoken


def test_class4_ai_among_shouted_words_is_the_word_ai() -> None:
    assert say("AI CŨNG PHẢI ĐEO KHẨU TRANG. Công nghệ AI.") == "ai cũng phải đeo khẩu trang công nghệ ây ai"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Sở Thông tin và Truyền thông (TT&TT) tổ chức", "sở thông tin và truyền thông tổ chức"),
        ("Sở Thông tin và Truyền thông (Sở TT&TT) cho biết", "sở thông tin và truyền thông cho biết"),
        ("Ủy ban nhân dân (UBND) xã", "ủy ban nhân dân xã"),
        ("Ban Chỉ đạo (BCĐ) huyện", "ban chỉ đạo huyện"),
        ("Hợp tác xã Dịch vụ Nông nghiệp (HTXDVNN) thôn Đông", "hợp tác xã dịch vụ nông nghiệp thôn đông"),
        ("Sở Nông nghiệp và Phát triển nông thôn (NN&PTNT)", "sở nông nghiệp và phát triển nông thôn"),
        ("Trung tâm Kiểm soát bệnh tật (CDC) tỉnh", "trung tâm kiểm soát bệnh tật tỉnh"),
        ("Ủy ban nhân dân tỉnh (UBND tỉnh) chỉ đạo", "ủy ban nhân dân tỉnh chỉ đạo"),
        ("Ban Chỉ đạo phòng chống dịch (sau đây gọi tắt là BCĐ) họp", "ban chỉ đạo phòng chống dịch họp"),
    ],
)
def test_class5_an_abbreviation_after_its_own_name_is_not_said_twice(text: str, spoken: str) -> None:
    assert say(text) == spoken


def test_class5_other_brackets_are_still_read() -> None:
    assert say("các ca nhiễm (F0) tại nhà") == "các ca nhiễm ép không tại nhà"
    assert say("do Sở Y tế (CDC) chủ trì") == "do sở y tế trung tâm kiểm soát bệnh tật chủ trì"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Công văn số 1465 /STTTT-BCVT của Sở", "công văn số một nghìn bốn trăm sáu mươi lăm của sở"),
        ("Quyết định số 125/ QĐ-UBND", "quyết định số một trăm hai mươi lăm"),
        ("Kế hoạch 30 / KH-UBND", "kế hoạch ba mươi"),
        ("Quyết định số 2345/QĐ - UBND", "quyết định số hai nghìn ba trăm bốn mươi lăm"),
        ("Thông tư số 12 /2021/TT-BTTTT", f"thông tư số mười hai năm {YEAR_2021}"),
        ("Nghị định 15 / 2020 / NĐ-CP", "nghị định mười lăm năm hai nghìn không trăm hai mươi"),
        ("Hướng dẫn số 09 - HD/BTGTU", "hướng dẫn số chín"),
        ("Công văn 987/UBND-VX", "công văn chín trăm tám mươi bảy"),
    ],
)
def test_class6_document_numbers_with_spaces_and_issuer_never_spelled(text: str, spoken: str) -> None:
    assert say(text) == spoken


def test_class6_a_spaced_slash_before_a_word_is_not_a_document_number() -> None:
    assert say("2 lần / ngày") == "hai lần một ngày"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("gọi ngay cho Trung tâm cấp cứu 115", "gọi ngay cho trung tâm cấp cứu một một năm"),
        ("Khi cần cấp cứu, người dân gọi 115.", "khi cần cấp cứu người dân gọi một một năm"),
        ("báo cháy gọi lực lượng cứu hỏa qua số 114", "báo cháy gọi lực lượng cứu hỏa qua số một một bốn"),
        ("tin báo gọi công an 113 để được hỗ trợ", "tin báo gọi công an một một ba để được hỗ trợ"),
        (
            "Đường dây nóng của công an xã và số 113 luôn trực",
            "đường dây nóng của công an xã và số một một ba luôn trực",
        ),
        ("hãy gọi Tổng đài quốc gia bảo vệ trẻ em 111", "hãy gọi tổng đài quốc gia bảo vệ trẻ em một một một"),
        ("xe cứu thương 115 đến lúc 7h", "xe cứu thương một một năm đến lúc bảy giờ"),
        ("Khi có cháy, gọi 114 để được hỗ trợ.", "khi có cháy gọi một một bốn để được hỗ trợ"),
        (
            "Gọi cứu hỏa 114, công an 113 hoặc cấp cứu 115.",
            "gọi cứu hỏa một một bốn công an một một ba hoặc cấp cứu một một năm",
        ),
    ],
)
def test_class7_service_numbers_after_a_service_word_are_digit_strings(text: str, spoken: str) -> None:
    assert say(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Bệnh viện đã cấp cứu 115 trường hợp", "bệnh viện đã cấp cứu một trăm mười lăm trường hợp"),
        ("Trung tâm đã tiếp nhận 115 cuộc gọi", "trung tâm đã tiếp nhận một trăm mười lăm cuộc gọi"),
        ("công an đã xử lý 114 vụ", "công an đã xử lý một trăm mười bốn vụ"),
        ("Huyện kêu gọi 115 hộ ủng hộ", "huyện kêu gọi một trăm mười lăm hộ ủng hộ"),
        (
            "Công an huyện đã kiểm tra 113 cơ sở kinh doanh",
            "công an huyện đã kiểm tra một trăm mười ba cơ sở kinh doanh",
        ),
        (
            "Xã có 113 hộ nghèo. Công an xã trực 24/7.",
            "xã có một trăm mười ba hộ nghèo công an xã trực hai mươi tư trên bảy",
        ),
    ],
)
def test_class7_the_same_numbers_as_counts_stay_numbers(text: str, spoken: str) -> None:
    assert say(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("toàn tỉnh có 215 xã¹ và 12 huyện²", "toàn tỉnh có hai trăm mười lăm xã và mười hai huyện"),
        ("theo số liệu thống kê²³, năm 2023⁵", "theo số liệu thống kê năm hai nghìn không trăm hai mươi ba"),
        ("Theo báo cáo [1], tỷ lệ đạt 90% [2].", "theo báo cáo tỷ lệ đạt chín mươi phần trăm"),
        ("các chỉ tiêu [1, 2] và [3-5] đều đạt", "các chỉ tiêu và đều đạt"),
        ("¹ Số liệu của Cục Thống kê.", "số liệu của cục thống kê"),
    ],
)
def test_class8_footnote_markers_are_not_said(text: str, spoken: str) -> None:
    assert say(text) == spoken


def test_class8_powers_of_units_stay() -> None:
    assert say("sân rộng 600 m², hồ 25m³, 3 km², 2 con/m²") == (
        "sân rộng sáu trăm mét vuông hồ hai mươi lăm mét khối ba ki lô mét vuông hai con một mét vuông"
    )


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Xem tại <http://hatinh.gov.vn/>.", "xem tại hatinh chấm gov chấm vn"),
        ("truy cập https://dichvucong.gov.vn/ để nộp", "truy cập dichvucong chấm gov chấm vn để nộp"),
        (
            "<https://hatinh.gov.vn/tin-tuc/> và <www.baohatinh.vn>",
            "hatinh chấm gov chấm vn gạch chéo tin gạch ngang tuc và www chấm baohatinh chấm vn",
        ),
        ("gửi thư tới <sotttt@hatinh.gov.vn>", "gửi thư tới sotttt a còng hatinh chấm gov chấm vn"),
        ("mẫu đơn tại https://forms.gle/abc/", "mẫu đơn tại forms chấm gle gạch chéo abc"),
    ],
)
def test_class9_links_lose_angle_brackets_and_trailing_slashes(text: str, spoken: str) -> None:
    assert say(text) == spoken


def test_class9_comparison_signs_in_prose_are_still_read() -> None:
    assert say("nếu a < b và x > y") == "nếu a nhỏ hơn b và x lớn hơn y"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("xem livestream trên Facebook", "xem lai xờ trim trên phây búc"),
        ("nhắn qua Zalo, ZALO hoặc zalo", "nhắn qua da lô da lô hoặc da lô"),
        ("trên website của xã, trang web huyện", "trên oép sai của xã trang oép huyện"),
        ("dùng smartphone quét QR code, QR-code", "dùng xờ mát phôn quét quy rờ cốt quy rờ cốt"),
        ("kết nối Wi-Fi, wifi, WiFi, Wi - Fi", "kết nối oai phai oai phai oai phai oai phai"),
        ("xem video, gửi email, E-mail qua internet", "xem vi đê ô gửi i meo i meo qua in tơ nét"),
        ("cài app PC-Covid, họp online", "cài áp pê xê cô vít họp on lai"),
        ("xem TV, nhắn SMS, bấm vào link", "xem ti vi nhắn ét em ét bấm vào linh"),
    ],
)
def test_class10_loanwords_are_respelled(text: str, spoken: str) -> None:
    assert say(text) == spoken


def test_a_whole_report_paragraph_reads_as_an_announcer_reads_it() -> None:
    text = (
        "Thực hiện Công văn số 1465 /STTTT-BCVT của Sở Thông tin và Truyền thông (TT&TT), "
        "năm 2021 -2022 tỷ lệ đạt 41.04%, mức hỗ trợ 500.000 đồng/người/tháng¹."
    )
    assert normalize(text) == (
        "Thực hiện Công văn số một nghìn bốn trăm sáu mươi lăm của Sở Thông tin và Truyền thông, "
        f"năm {YEAR_2021} đến {YEAR_2022} tỷ lệ đạt bốn mươi mốt phẩy không bốn phần trăm, "
        "mức hỗ trợ năm trăm nghìn đồng một người một tháng."
    )
