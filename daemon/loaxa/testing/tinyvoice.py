"""Tiny Piper-format voices (`NAME.onnx` + `NAME.onnx.json`) for tests.

The graph has exactly Piper's I/O: `input` int64 [1, N], `input_lengths`
int64 [1], `scales` float32 [3] and, with more than one speaker, `sid`
int64 [1]; one float32 output of rank 4 [1, 1, 1, T]. It is no speech
model: its output spells out what it was given, so tests can read it back
with `decode_header` and `decode_ids`.

    out[0:4]  noise_scale, length_scale, noise_w, sid (-1 without speakers)
    out[4:]   per phoneme id, round(16 * length_scale) samples of
              ±id * 0.005 with alternating sign (a Nyquist tone)

`mode="hang"` adds a loop that spins for hours (for deadline tests) and
`mode="fail"` makes every run fail inside onnxruntime. `crash="segv"` (or
"abort", "exit", "hang") writes test-only metadata that the neural voice
process (`loaxa.speech.voice_child`) obeys: it kills itself that way on its
`crash_run`-th audio request, once (a marker file beside the model keeps the
restarted process healthy). Writing a voice needs `onnx` (the `test`
extra); it is imported only then.

    onnx_path = make_tiny_voice(tmp_path)                   # single speaker
    onnx_path = make_tiny_voice(tmp_path, num_speakers=3)   # with `sid`
    onnx_path = make_tiny_voice(tmp_path, mode="hang")      # or "fail"
    onnx_path = make_tiny_voice(tmp_path, crash="segv", crash_run=2)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

SAMPLES_PER_ID = 16
AMPLITUDE_PER_ID = 0.005
SAMPLE_RATE = 22050
OPSET = 17
NAME = "xx_XX-tiny-x_low"
MODES = ("ok", "hang", "fail")
CRASHES = ("segv", "abort", "exit", "hang")


def _phoneme_id_map() -> dict[str, list[int]]:
    """Piper's default espeak map: the same symbols the real voices use."""
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    return {k: list(v) for k, v in DEFAULT_PHONEME_ID_MAP.items()}


def _const(
    name: str, value: float | list[float] | list[int], dtype: int | None = None, dims: list[int] | None = None
) -> onnx.NodeProto:
    """A Constant node; float32 unless `dtype` says otherwise, a scalar unless `dims`."""
    from onnx import TensorProto, helper

    vals: list[float] | list[int] = value if isinstance(value, list) else [value]
    dtype = TensorProto.FLOAT if dtype is None else dtype
    tensor = helper.make_tensor(name + "_t", dtype, dims if dims is not None else [], vals)
    return helper.make_node("Constant", [], [name], value=tensor)


def _graph(num_speakers: int, mode: str) -> onnx.GraphProto:
    from onnx import TensorProto, helper

    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    nodes = [
        _const("c_samples", float(SAMPLES_PER_ID)),
        _const("c_one", 1.0),
        _const("c_amp", AMPLITUDE_PER_ID),
        _const("c_pi", math.pi),
        _const("c_zero", 0.0),
        _const("i_0", 0, i64),
        _const("i_1", 1, i64),
        _const("i_2", 2, i64),
        _const("axis2", [2], i64, [1]),
        _const("shape1", [1], i64, [1]),
        _const("shape_out", [1, 1, 1, -1], i64, [4]),
        _const("shape_hdr", [1, 1, 1, 4], i64, [4]),
        # samples per id from length_scale
        helper.make_node("Gather", ["scales", "i_0"], ["noise"]),
        helper.make_node("Gather", ["scales", "i_1"], ["length"]),
        helper.make_node("Gather", ["scales", "i_2"], ["noise_w"]),
        helper.make_node("Mul", ["length", "c_samples"], ["rep_raw"]),
        helper.make_node("Round", ["rep_raw"], ["rep_round"]),
        helper.make_node("Max", ["rep_round", "c_one"], ["rep_f"]),
        helper.make_node("Cast", ["rep_f"], ["rep"], to=i64),
        helper.make_node("Reshape", ["rep", "shape1"], ["rep1"]),
        # each id held for `rep` samples
        helper.make_node("Cast", ["input"], ["ids_f"], to=f),
        helper.make_node("Shape", ["input"], ["in_shape"]),
        helper.make_node("Concat", ["in_shape", "rep1"], ["target"], axis=0),
        helper.make_node("Unsqueeze", ["ids_f", "axis2"], ["ids3"]),
        helper.make_node("Expand", ["ids3", "target"], ["held"]),
        helper.make_node("Reshape", ["held", "shape_out"], ["flat"]),
        helper.make_node("Mul", ["flat", "c_amp"], ["level"]),
        # alternating sign: cos(pi * n)
        helper.make_node("Size", ["flat"], ["n_total"]),
        helper.make_node("Cast", ["n_total"], ["n_total_f"], to=f),
        helper.make_node("Range", ["c_zero", "n_total_f", "c_one"], ["n"]),
        helper.make_node("Mul", ["n", "c_pi"], ["phase"]),
        helper.make_node("Cos", ["phase"], ["carrier"]),
        helper.make_node("Mul", ["level", "carrier"], ["body"]),
    ]
    inputs = [
        helper.make_tensor_value_info("input", i64, [1, "phonemes"]),
        helper.make_tensor_value_info("input_lengths", i64, [1]),
        helper.make_tensor_value_info("scales", f, [3]),
    ]
    if num_speakers > 1:
        inputs.append(helper.make_tensor_value_info("sid", i64, [1]))
        nodes += [
            helper.make_node("Cast", ["sid"], ["sid_f1"], to=f),
            helper.make_node("Reshape", ["sid_f1", "shape1"], ["sid_f"]),
        ]
    else:
        nodes.append(_const("sid_f", [-1.0], f, [1]))
    nodes += [
        helper.make_node("Reshape", ["noise", "shape1"], ["noise1"]),
        helper.make_node("Reshape", ["length", "shape1"], ["length1"]),
        helper.make_node("Reshape", ["noise_w", "shape1"], ["noise_w1"]),
        helper.make_node("Concat", ["noise1", "length1", "noise_w1", "sid_f"], ["hdr"], axis=0),
        helper.make_node("Reshape", ["hdr", "shape_hdr"], ["header"]),
    ]
    body = "body"
    if mode == "hang":
        nodes += _spin_loop("body", "body_spun")
        body = "body_spun"
    elif mode == "fail":
        # a fixed shape that no real body has: every run fails in onnxruntime
        nodes += [
            _const("bad_shape", [1, 1, 1, 3], i64, [4]),
            helper.make_node("Reshape", ["body", "bad_shape"], ["body_bad"]),
        ]
        body = "body_bad"
    nodes.append(helper.make_node("Concat", ["header", body], ["output"], axis=3))
    outputs = [helper.make_tensor_value_info("output", f, [1, 1, 1, "time"])]
    return helper.make_graph(nodes, "tiny_piper_voice", inputs, outputs)


def _spin_loop(src: str, dst: str) -> list[onnx.NodeProto]:
    """A loop of 2**40 steps whose result feeds the output, so it cannot be skipped."""
    from onnx import TensorProto, helper

    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    loop_body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Sin", ["acc_in"], ["acc_sin"]),
            helper.make_node("Cos", ["acc_sin"], ["acc_out"]),
        ],
        "spin",
        [
            helper.make_tensor_value_info("iter", i64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", f, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", f, None),
        ],
    )
    return [
        _const("spin_steps", 2**40, i64),
        helper.make_node("Constant", [], ["spin_cond"], value=helper.make_tensor("sc", TensorProto.BOOL, [], [True])),
        helper.make_node("Loop", ["spin_steps", "spin_cond", src], ["spun"], body=loop_body),
        _const("spin_zero", 0.0),
        helper.make_node("Mul", ["spun", "spin_zero"], ["spun0"]),
        helper.make_node("Add", [src, "spun0"], [dst]),
    ]


def make_tiny_voice(
    directory: Path,
    *,
    name: str = NAME,
    num_speakers: int = 1,
    mode: str = "ok",
    crash: str | None = None,
    crash_run: int = 1,
    crash_once: bool = True,
) -> Path:
    """Write `name.onnx` and `name.onnx.json` into `directory`; returns the `.onnx` path.

    `mode` is "ok", "hang" (runs never end) or "fail" (runs always fail);
    `crash` makes the voice process die on its `crash_run`-th audio request.
    """
    import onnx
    from onnx import helper

    from loaxa.speech.voice_child import TEST_FAULT_KEY

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if crash is not None and crash not in CRASHES:
        raise ValueError(f"crash must be one of {', '.join(CRASHES)}, not {crash!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = helper.make_model(
        _graph(num_speakers, mode),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="loaxa-make-tiny-voice",
    )
    model.ir_version = 8
    if crash is not None:
        fault = {"kind": crash, "run": crash_run, "once": crash_once}
        helper.set_model_props(model, {TEST_FAULT_KEY: json.dumps(fault)})
    onnx.checker.check_model(model)
    onnx_path = directory / f"{name}.onnx"
    Path(str(onnx_path) + ".fault-fired").unlink(missing_ok=True)
    onnx.save(model, str(onnx_path))
    config = {
        "audio": {"sample_rate": SAMPLE_RATE, "quality": "x_low"},
        "espeak": {"voice": "vi"},
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_id_map": _phoneme_id_map(),
        "num_symbols": 256,
        "num_speakers": num_speakers,
        "speaker_id_map": {f"speaker{i}": i for i in range(num_speakers)} if num_speakers > 1 else {},
        "piper_version": "1.0.0",
        "language": {"code": "vi_VN", "family": "vi", "region": "VN"},
        "dataset": "tiny",
    }
    config_text = json.dumps(config, ensure_ascii=False, indent=2)
    onnx_path.with_name(onnx_path.name + ".json").write_text(config_text, encoding="utf-8")
    return onnx_path


def decode_header(raw: np.ndarray) -> tuple[float, float, float, float]:
    """(noise_scale, length_scale, noise_w, sid) the model was run with."""
    noise, length, noise_w, sid = (float(v) for v in raw[:4])
    return noise, length, noise_w, sid


def decode_ids(raw: np.ndarray, length_scale: float = 1.0) -> list[int]:
    """The phoneme ids the model was given, read back from its raw output."""
    per_id = max(1, round(SAMPLES_PER_ID * length_scale))
    body = np.abs(raw[4:]).reshape(-1, per_id)
    return [round(float(v) / AMPLITUDE_PER_ID) for v in body.mean(axis=1)]
