"""Playing here, without a daemon: the same output, chime and amplifier path."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from loaxa.config import Settings
from loaxa.player.amplifier import build_amplifier
from loaxa.player.output import build_sink
from loaxa.player.session import Session
from loaxa.speech.engine import Chunk


def air_here(settings: Settings, content: Iterable[Chunk | np.ndarray], chime: bool = True) -> float:
    """Relay on, chime, content, chime, amplifier off; the seconds written."""
    audio = settings.audio
    amplifier = build_amplifier(settings.amplifier)
    try:
        amplifier.ensure_on()
        output = build_sink(audio.output, audio.latency_s).open(audio.sample_rate_hz, "local")
        try:
            session = Session(output, audio.sample_rate_hz, audio.volume)
            session.silence(audio.lead_silence_s)
            if chime and audio.chime:
                session.chime(opening=True)
            for item in content:
                if isinstance(item, Chunk):
                    session.play(item.samples)
                    session.silence(item.pause_s)
                else:
                    session.play(item)
            if chime and audio.chime:
                session.chime(opening=False)
            return session.written_s
        finally:
            output.close()
    finally:
        amplifier.shutdown()
