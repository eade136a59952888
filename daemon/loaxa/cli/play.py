"""`loaxa play`: play a WAV/MP3/OGG file now through the amplifier."""

from __future__ import annotations

import argparse
from pathlib import Path

from loaxa.cli._common import add_config_arg, settings_or_defaults
from loaxa.cli.say import _through_daemon_or_here
from loaxa.config import Settings
from loaxa.errors import LoaxaError
from loaxa.i18n import _


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("play", help="play an audio file (WAV, MP3, OGG) now")
    add_config_arg(p)
    p.add_argument("file", type=Path)
    p.add_argument("--no-chime", action="store_true", help="leave out the opening and closing chime")
    p.set_defaults(func=play)


def play(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise LoaxaError(_("{file}: no such file").format(file=args.file))
    settings = settings_or_defaults(args)
    request = {"cmd": "play", "chime": not args.no_chime}
    return _through_daemon_or_here(settings, request, lambda: _play_here(settings, args), file=args.file)


def _play_here(settings: Settings, args: argparse.Namespace) -> None:
    import tempfile

    from loaxa.cli._local import air_here
    from loaxa.sources.registry import AudioSource

    with tempfile.TemporaryDirectory() as tmp:
        rate = settings.audio.sample_rate_hz
        source = AudioSource(Path(tmp), rate=rate, max_bytes=2**31)
        try:  # no player to keep free here: wait for the decoding
            samples = source.wait(source.admit(args.file), timeout_s=source.decode_timeout_s + 60).samples
        finally:
            source.close()
        step = int(0.1 * rate)
        blocks = (samples[i : i + step] for i in range(0, len(samples), step))
        air_here(settings, blocks, chime=not args.no_chime)
