"""The one float <-> int16 convention: full scale, silence, clipping, round trips."""

from __future__ import annotations

import numpy as np

from loaxa.pcm import from_int16, from_int16_bytes, to_int16, to_int16_bytes


def test_full_scale_and_silence_map_to_the_int16_extremes_without_wrapping() -> None:
    pcm = to_int16(np.array([-1.0, 0.0, 1.0], dtype=np.float32))
    assert pcm.tolist() == [-32767, 0, 32767]
    assert pcm.dtype == np.dtype("<i2")


def test_out_of_range_samples_are_clipped_not_wrapped() -> None:
    assert to_int16(np.array([-3.0, 1.5, np.float32(1.0001)])).tolist() == [-32767, 32767, 32767]


def test_int16_to_float_divides_by_32768_so_everything_lands_in_minus_one_to_one() -> None:
    samples = from_int16(np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16))
    assert samples.dtype == np.float32
    assert samples.tolist() == [-1.0, -0.5, 0.0, 0.5, 32767 / 32768]
    assert samples.max() < 1.0


def test_round_trip_error_is_below_two_steps() -> None:
    rng = np.random.default_rng(7)
    samples = rng.uniform(-1.0, 1.0, 10_000).astype(np.float32)
    back = from_int16(to_int16(samples))
    assert np.max(np.abs(back - samples)) < 1.5 / 32768


def test_bytes_are_little_endian_and_an_odd_trailing_byte_is_ignored() -> None:
    data = to_int16_bytes(np.array([0.5, -0.5], dtype=np.float32))
    assert data == (16384).to_bytes(2, "little", signed=True) + (-16384).to_bytes(2, "little", signed=True)
    assert from_int16_bytes(data + b"\x7f").tolist() == [16384 / 32768, -16384 / 32768]
