#!/usr/bin/env python3
"""Time normalising a long provincial report as `loaxa normalize` does (line by line).

.venv/bin/python scripts/bench_normalize.py [--kb 58] [--repeats 21] [--dialect north]

The report is built from sentences of the kind provincial reports and
bulletins hold (numbers, dates, ranges, "per" slashes, decimals, document
numbers, hotlines, abbreviations, links, footnotes, loanwords), with the
figures varied from paragraph to paragraph, up to `--kb` kilobytes of UTF-8.
"""

from __future__ import annotations

import argparse
import statistics
import time

from loaxa.speech.normalize import Lexicon, normalize
from loaxa.speech.split import split_sentences

# {n} is replaced by a number that changes with each paragraph.
PARAGRAPHS = [
    "BÁO CÁO Kết quả thực hiện nhiệm vụ phát triển kinh tế - xã hội 9 tháng đầu năm {y}",
    "Thực hiện Công văn số {n}4 /STTTT-BCVT ngày 12/9/{y} của Sở Thông tin và Truyền thông (TT&TT), "
    "UBND huyện báo cáo kết quả như sau:",
    "I. TÌNH HÌNH CHUNG",
    "1. Đến 17h00 ngày 22/9/{y}, toàn huyện có {n}5.242 người đã tiêm mũi 3, đạt 91.04% dân số từ 18 tuổi "
    "trở lên; tỷ lệ tiêm cho trẻ 5 -11 tuổi đạt 87,5%.",
    "2. Số ca mắc Covid -19 trong năm {y} -{z} giảm {n}%; các trường hợp F0-F2 được quản lý tại nhà, "
    "F1 cách ly 5 - 7 ngày theo Quyết định số 125/ QĐ-UBND¹.",
    "- Tổng diện tích lúa vụ Hè Thu đạt {n}.350 ha, năng suất bình quân 6,5 tấn/ha, sản lượng ước đạt "
    "{n}8.775 tấn; thả nuôi 3-4 con/m2 tôm thẻ chân trắng trên 120 ha.",
    "- Mức hỗ trợ hộ nghèo là 1.263.600 đồng/người/năm; hộ cận nghèo 900.000 đồng/người/tháng; "
    "người cao tuổi từ 80 tuổi trở lên được hỗ trợ 360.000 đồng/người/tháng [2].",
    "- Học sinh uống thuốc tẩy giun 2 lần/năm; trạm y tế trực 24/7, mỗi ca 3 người.",
    "+ Tuyến ĐT.549 và QL1A qua địa bàn dài 12.5 km, mặt đường rộng 7.5 m; đã sửa chữa 3 cầu trên QL.8.",
    "+ Nhiệt độ thấp nhất ở vùng núi có nơi -2°C, ở đồng bằng 10 - 12°C; lượng mưa phổ biến 50-100 mm.",
    "II. CÔNG TÁC CHỈ ĐẠO, ĐIỀU HÀNH",
    "BCH quân sự huyện phối hợp với BCH Đoàn huyện, BCH Hội Nông dân tổ chức ra quân; P.V Đài PT&TH "
    "tỉnh và PV Cổng TTĐT huyện đưa tin; CBCCVC các phòng, ban và VP HĐND-UBND tham gia.",
    "Ủy ban nhân dân (UBND) các xã chỉ đạo Ban Chỉ đạo (BCĐ) chuyển đổi số rà soát ứng dụng AI, IoT "
    "và đèn LED tiết kiệm điện; mục 2.1 của Kế hoạch số {n} /KH-UBND yêu cầu đẩy mạnh công nghiệp 4.0.",
    "Người dân khi cần cấp cứu gọi ngay cho Trung tâm cấp cứu 115; báo cháy gọi lực lượng cứu hỏa qua "
    "số 114; tin báo tội phạm gọi công an 113. Bệnh viện huyện đã cấp cứu 115 trường hợp.",
    "Thông tin chi tiết xem tại <http://hatinh.gov.vn/> hoặc https://dichvucong.gov.vn/, góp ý gửi "
    "vanphong@hatinh.gov.vn; liên hệ số nhà 12/3 đường Trần Phú, điện thoại 0239.3855.{n}12.",
    "Bà con theo dõi livestream trên Facebook, Zalo và website của xã; dùng smartphone quét QR code, "
    "kết nối Wi-Fi miễn phí tại nhà văn hóa, xem video hướng dẫn, gửi email hoặc họp online qua internet; "
    "cài app Bluezone và PC-Covid.",
    "Giá trị sản xuất tăng 7,25% so với cùng kỳ; tổng vốn đầu tư 1,2 tỷ đồng, trong đó 500.000 VNĐ/người "
    "do nhân dân đóng góp; có {n}2 hộ vay vốn với lãi suất 0,03%/ngày.",
    "Quốc hội khóa XV, Đại hội Đảng bộ huyện lần thứ XXIII nhiệm kỳ 2020-2025; Chỉ thị 16/CT-TTg, "
    "Nghị định 49/2024/NĐ-CP và Nghị quyết số 09-NQ/TW được quán triệt đến 100% chi bộ.",
    "III. NHIỆM VỤ TRỌNG TÂM QUÝ IV/{y}",
    "Tiếp tục chỉ đạo các xã/phường/thị trấn thực hiện tốt công tác phòng, chống thiên tai; KT. CHỦ TỊCH "
    "PHÓ CHỦ TỊCH ký. Trong ngày 15/10, toàn huyện ghi nhận 0 ca mắc mới, 1 điểm tiêm cố định và "
    "5 tổ tiêm lưu động.",
    "Bà con chú ý giữ gìn vệ sinh chung, không thả rông gia súc, chủ động chằng chống nhà cửa, di dời "
    "người và tài sản đến nơi an toàn trước khi bão đổ bộ; mọi thắc mắc liên hệ đường dây nóng 0912.345.678.",
]


def report(kb: int) -> str:
    """A report of about `kb` kilobytes (UTF-8), one paragraph a line."""
    lines: list[str] = []
    size = 0
    while size < kb * 1000:
        index = len(lines)
        n = index // len(PARAGRAPHS) % 9 + 1
        line = PARAGRAPHS[index % len(PARAGRAPHS)].format(n=n, y=2020 + n, z=2021 + n)
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=58, help="size of the report in kilobytes of UTF-8")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dialect", default="north")
    args = parser.parse_args()

    text = report(args.kb)
    lines = text.split("\n")
    started = time.perf_counter()
    lexicon = Lexicon.load()
    normalize("Khởi động 1/1.", dialect=args.dialect, lexicon=lexicon)
    first_ms = (time.perf_counter() - started) * 1000

    norm_ms, cpu_ms, split_ms = [], [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        spoken = "\n".join(normalize(line, dialect=args.dialect, lexicon=lexicon) for line in lines)
        t1, c1 = time.perf_counter(), time.process_time()
        chunks = split_sentences(spoken)
        t2 = time.perf_counter()
        norm_ms.append((t1 - t0) * 1000)
        cpu_ms.append((c1 - c0) * 1000)
        split_ms.append((t2 - t1) * 1000)

    print(
        f"input: {len(text.encode('utf-8')) / 1000:.1f} KB, {len(text)} characters, {len(lines)} lines"
        f" -> {len(spoken)} characters, {len(chunks)} chunks"
    )
    print(f"first call (lexicon load + warm-up): {first_ms:.1f} ms")
    print(f"normalize: median {statistics.median(norm_ms):.1f} ms, min {min(norm_ms):.1f} ms over {args.repeats} runs")
    # CPU time is what the normaliser costs; wall time also counts other processes on the cores.
    print(f"normalize CPU time: median {statistics.median(cpu_ms):.1f} ms")
    print(f"split_sentences: median {statistics.median(split_ms):.1f} ms")


if __name__ == "__main__":
    main()
