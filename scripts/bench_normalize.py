#!/usr/bin/env python3
"""Time `normalize()` on a 20,000-character bulletin; prints the median of repeats.

.venv/bin/python scripts/bench_normalize.py [--chars 20000] [--repeats 21] [--dialect north]
"""

from __future__ import annotations

import argparse
import statistics
import time

from loaxa.speech.normalize import Lexicon, normalize
from loaxa.speech.split import split_sentences

# Typical commune bulletin paragraphs: numbers, dates, times, money, units,
# phones, document numbers, abbreviations, and plain prose.
PARAGRAPHS = [
    "Đến 17h00 ngày 22/9/2021, toàn tỉnh có 215.242 điện thoại cài Bluezone, chiếm 41,04%. "
    "Đề nghị UBND các xã thực hiện 5K theo Chỉ thị 16/CT-TTg; liên hệ đường dây nóng 0205.3812.345.",
    "Căn cứ Quyết định số 1234/QĐ-UBND và Nghị định 49/2024/NĐ-CP, mỗi hộ bị thiệt hại được hỗ trợ "
    "2,5 triệu đồng; tổng kinh phí là 3 tỷ đồng, mức hỗ trợ 500.000 VNĐ/người.",
    "Bão số 3 đang di chuyển theo hướng Tây Bắc với tốc độ 15-20 km/h. Vùng gần tâm bão mạnh cấp 10, "
    "giật cấp 12; lượng mưa phổ biến 100-200 mm, nhiệt độ 25-30°C.",
    "Chiến dịch diễn ra từ ngày 01/6 - 22/8/2021 tại TP. Hà Tĩnh và TX. Kỳ Anh; điểm tiêm mở cửa từ 7h30 "
    "đến 17:30, mọi thắc mắc liên hệ 0987.654.321 hoặc gọi 115.",
    "Quốc hội khóa XV, Hội thi lần thứ III, thế kỷ XXI; học sinh THCS và THPT mang theo CCCD và thẻ BHYT. "
    "Thông tin chi tiết xem tại dichvucong.gov.vn hoặc gửi về vanphong@hatinh.gov.vn.",
    "Bà con chú ý giữ gìn vệ sinh chung, không thả rông gia súc, chủ động chằng chống nhà cửa, "
    "di dời người và tài sản đến nơi an toàn trước khi bão đổ bộ.",
]


def bulletin(chars: int) -> str:
    lines: list[str] = []
    size = 0
    while size < chars:
        paragraph = PARAGRAPHS[len(lines) % len(PARAGRAPHS)]
        lines.append(paragraph)
        size += len(paragraph) + 1
    return "\n".join(lines)[:chars]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dialect", default="north")
    args = parser.parse_args()

    text = bulletin(args.chars)
    started = time.perf_counter()
    lexicon = Lexicon.load()
    normalize("Khởi động 1/1.", dialect=args.dialect, lexicon=lexicon)
    first_ms = (time.perf_counter() - started) * 1000

    norm_ms, split_ms = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        spoken = normalize(text, dialect=args.dialect, lexicon=lexicon)
        t1 = time.perf_counter()
        chunks = split_sentences(spoken)
        t2 = time.perf_counter()
        norm_ms.append((t1 - t0) * 1000)
        split_ms.append((t2 - t1) * 1000)

    print(
        f"input: {len(text)} characters, {text.count(chr(10)) + 1} lines"
        f" -> {len(spoken)} characters, {len(chunks)} chunks"
    )
    print(f"first call (lexicon load + warm-up): {first_ms:.1f} ms")
    print(f"normalize: median {statistics.median(norm_ms):.1f} ms, min {min(norm_ms):.1f} ms over {args.repeats} runs")
    print(f"split_sentences: median {statistics.median(split_ms):.1f} ms")


if __name__ == "__main__":
    main()
