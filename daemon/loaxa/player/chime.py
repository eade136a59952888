"""The opening and closing chime, generated: two soft bell tones."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# A falling major third opens, the rising one closes: listeners learn the pair.
OPEN_HZ = (784.0, 622.3)
CLOSE_HZ = (622.3, 784.0)
NOTE_S = 0.45
LEVEL = 0.5


def _bell(freq: float, rate: int) -> np.ndarray:
    t = np.arange(int(NOTE_S * rate)) / rate
    tone = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2 * freq * t) * np.exp(-t * 9)
    envelope = np.exp(-t * 5.0) * np.minimum(1.0, t / 0.008)  # 8 ms attack: no click
    return (tone * envelope / 1.3).astype(np.float32)


@lru_cache(maxsize=8)
def chime(rate: int, opening: bool = True) -> np.ndarray:
    """Float32 samples of the chime at `rate` (read-only; do not modify)."""
    first, second = OPEN_HZ if opening else CLOSE_HZ
    samples = np.concatenate([_bell(first, rate), _bell(second, rate), np.zeros(int(0.25 * rate), np.float32)])
    samples *= LEVEL
    samples.setflags(write=False)
    return samples
