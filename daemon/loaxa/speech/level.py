"""Levelling: every chunk at one loudness, peaks soft-limited.

Piper normalises each sentence to its own peak, so loudness jumps between
sentences; this brings each chunk to the same RMS over its voiced frames.
"""

from __future__ import annotations

import numpy as np

TARGET_RMS = 0.1  # -20 dBFS over the voiced frames of every chunk
KNEE = 0.85  # the soft limiter starts here; output never reaches 1.0
MAX_GAIN = 30.0


def level(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Scale to TARGET_RMS over the voiced 20 ms frames, then soft-limit peaks.

    Piper scales every sentence to its own peak, so a sentence with one loud
    plosive comes out quieter than its neighbours; an RMS over voiced frames
    follows what the ear hears, and the limiter keeps peaks below full scale.
    """
    x = np.asarray(samples, dtype=np.float32)
    frame = max(1, sample_rate // 50)
    n = len(x) // frame
    if n == 0:
        rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    else:
        frames = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
        voiced = frames[frames > max(1e-4, frames.max() * 0.03)]  # within 30 dB of the loudest
        rms = float(np.sqrt(np.mean(voiced**2))) if len(voiced) else 0.0
    if rms < 1e-5:
        return x.copy()
    y = x * min(TARGET_RMS / rms, MAX_GAIN)
    over = np.abs(y) > KNEE
    if over.any():
        room = 1.0 - KNEE
        y[over] = np.sign(y[over]) * (KNEE + room * np.tanh((np.abs(y[over]) - KNEE) / room))
    return y.astype(np.float32)
