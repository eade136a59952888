"""`audio.output` parsed once: the sink and the doctor read it the same way."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from loaxa.player.output import DeviceSink, NullSink, OutputSpec, WavDirSink, build_sink, parse_output_spec


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("default", OutputSpec("device", device="default")),
        ("USB Audio", OutputSpec("device", device="USB Audio")),
        ("null", OutputSpec("null")),
        ("wav:/var/lib/loaxa/aired", OutputSpec("wav", folder=Path("/var/lib/loaxa/aired"))),
        ("wav:", OutputSpec("wav", folder=Path("."))),
        ("nullsink", OutputSpec("device", device="nullsink")),
    ],
)
def test_each_form_of_the_spec(spec: str, parsed: OutputSpec) -> None:
    assert parse_output_spec(spec) == parsed
    assert parsed.loudspeaker == (parsed.kind == "device")


def test_build_sink_follows_the_parsed_spec(tmp_path: Path) -> None:
    assert isinstance(build_sink("null"), NullSink)
    device = build_sink("USB Audio", latency_s=0.05)
    assert isinstance(device, DeviceSink) and device.describe() == "USB Audio" and device.latency_s == 0.05
    sink = build_sink(parse_output_spec(f"wav:{tmp_path}"))
    assert isinstance(sink, WavDirSink) and sink.describe() == f"wav:{tmp_path}"


def test_a_wav_sink_writes_one_16_bit_file_per_session(tmp_path: Path) -> None:
    out = build_sink(f"wav:{tmp_path / 'aired'}").open(22050, "b-1/rev 2")
    out.write(np.array([0.5, -0.5, 1.0], dtype=np.float32))
    out.close()
    (path,) = (tmp_path / "aired").iterdir()
    assert path.name.endswith("-b-1_rev_2.wav")
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (22050, 2, 1)
        assert np.frombuffer(wav.readframes(3), dtype="<i2").tolist() == [16384, -16384, 32767]
