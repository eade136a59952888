"""Float samples <-> 16-bit PCM, one convention for the whole station.

int16 -> float divides by 32768, so every stored value maps into [-1, 1).
float -> int16 clips to [-1, 1], scales by 32767 and rounds to the nearest
step, so full scale never wraps and silence stays exactly 0. A round trip
changes a sample by less than 1.5 / 32768.
"""

from __future__ import annotations

import numpy as np

FROM_INT16 = 32768.0
TO_INT16 = 32767.0
PCM16 = np.dtype("<i2")  # WAV and the cache store little-endian samples


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples (nominally in [-1, 1]) as little-endian int16."""
    scaled = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * TO_INT16
    return np.rint(scaled).astype(PCM16)


def to_int16_bytes(samples: np.ndarray) -> bytes:
    """The bytes of `to_int16`, as a 16-bit mono WAV frame block wants them."""
    return to_int16(samples).tobytes()


def from_int16(pcm: np.ndarray) -> np.ndarray:
    """Int16 samples as float32 in [-1, 1)."""
    return np.asarray(pcm).astype(np.float32) / FROM_INT16


def from_int16_bytes(data: bytes) -> np.ndarray:
    """Little-endian 16-bit frames as float32; a trailing odd byte is ignored."""
    return from_int16(np.frombuffer(data[: len(data) // 2 * 2], dtype=PCM16))
