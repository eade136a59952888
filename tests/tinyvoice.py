"""Tiny Piper-format voices for tests, made by scripts/make_tiny_voice.py.

    from tinyvoice import make_tiny_voice, decode_ids
    onnx_path = make_tiny_voice(tmp_path)            # single speaker
    onnx_path = make_tiny_voice(tmp_path, 3)         # with `sid`
    onnx_path = make_tiny_voice(tmp_path, mode="hang")  # or "fail"
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_tiny_voice.py"
_spec = importlib.util.spec_from_file_location("make_tiny_voice", _SCRIPT)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("make_tiny_voice", _module)
_spec.loader.exec_module(_module)

SAMPLES_PER_ID: int = _module.SAMPLES_PER_ID
AMPLITUDE_PER_ID: float = _module.AMPLITUDE_PER_ID
SAMPLE_RATE: int = _module.SAMPLE_RATE


def make_tiny_voice(directory: Path, num_speakers: int = 1, mode: str = "ok", name: str = "xx_XX-tiny-x_low") -> Path:
    """Write `name.onnx` + `name.onnx.json` into `directory`; returns the .onnx path."""
    return _module.make_tiny_voice(Path(directory), name=name, num_speakers=num_speakers, mode=mode)


def decode_header(raw: np.ndarray) -> tuple[float, float, float, float]:
    """(noise_scale, length_scale, noise_w, sid) the model was run with."""
    return tuple(float(v) for v in raw[:4])  # type: ignore[return-value]


def decode_ids(raw: np.ndarray, length_scale: float = 1.0) -> list[int]:
    """The phoneme ids the model was given, read back from its raw output."""
    per_id = max(1, round(SAMPLES_PER_ID * length_scale))
    body = np.abs(raw[4:]).reshape(-1, per_id)
    return [int(round(v / AMPLITUDE_PER_ID)) for v in body.mean(axis=1)]
