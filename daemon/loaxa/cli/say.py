"""`loaxa say`: speak text now through the amplifier, or into a WAV file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loaxa.cli._common import add_config_arg, settings_or_defaults
from loaxa.config import Settings
from loaxa.errors import ControlError, LoaxaError
from loaxa.i18n import _

WAIT_S = 600.0  # the daemon answers when it has aired, or says why not, within this


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("say", help="speak Vietnamese text now (or write it to a WAV file)")
    add_config_arg(p)
    p.add_argument("words", nargs="*", help="the text (or use --text, or stdin)")
    p.add_argument("--text", help="the text to speak")
    p.add_argument("-o", "--output", help="write a 16-bit mono WAV file instead of playing")
    p.add_argument("--rate", type=float, help="speaking rate, 0.5-2 (default: tts.rate)")
    p.add_argument("--silence-duration", type=float, help="seconds of silence between sentences")
    p.add_argument("--no-chime", action="store_true", help="leave out the opening and closing chime")
    p.set_defaults(func=say)


def say(args: argparse.Namespace) -> int:
    text = args.text or " ".join(args.words) or (sys.stdin.read() if not sys.stdin.isatty() else "")
    if not text.strip():
        raise LoaxaError(_("nothing to say: give the text as arguments, --text or on stdin"))
    if args.rate is not None and not 0.5 <= args.rate <= 2.0:
        raise LoaxaError("--rate must be between 0.5 and 2")
    settings = settings_or_defaults(args)
    if args.output:
        from loaxa.speech.pipeline import build_speaker, synthesize_to_wav

        speaker = build_speaker(settings.tts, settings.text, settings.audio.sample_rate_hz)
        try:
            seconds = synthesize_to_wav(speaker, text, args.output, rate=args.rate, silence_s=args.silence_duration)
        finally:
            speaker.close()
        print(
            _("wrote {path}: {seconds} s, voice {voice}").format(
                path=args.output, seconds=f"{seconds:.1f}", voice=speaker.status()["name"]
            )
        )
        return 0
    if args.silence_duration is not None:
        # The daemon speaks with its own sentence pause; a chosen one is made here and played by it.
        return _say_with_pause(settings, text, args)
    request = {"cmd": "say", "text": text, "rate": args.rate, "chime": not args.no_chime}
    return _through_daemon_or_here(settings, request, lambda: _say_here(settings, text, args))


def _say_with_pause(settings: Settings, text: str, args: argparse.Namespace) -> int:
    import tempfile

    from loaxa.speech.pipeline import build_speaker, synthesize_to_wav

    with tempfile.TemporaryDirectory(prefix="loaxa-say-") as tmp:
        wav = Path(tmp) / "say.wav"
        speaker = build_speaker(settings.tts, settings.text, settings.audio.sample_rate_hz)
        try:
            synthesize_to_wav(speaker, text, wav, rate=args.rate, silence_s=args.silence_duration)
        finally:
            speaker.close()
        _trim_the_last_pause(wav, args.silence_duration)
        request = {"cmd": "play", "chime": not args.no_chime}
        return _through_daemon_or_here(settings, request, lambda: _say_here(settings, text, args), file=wav)


def _trim_the_last_pause(path: Path, pause_s: float) -> None:
    """The pause goes between sentences, not after the last one (before the closing chime)."""
    import wave

    with wave.open(str(path), "rb") as wav:
        params, frames = wav.getparams(), wav.readframes(wav.getnframes())
    keep = max(0, len(frames) - int(pause_s * params.framerate) * params.sampwidth * params.nchannels)
    with wave.open(str(path), "wb") as wav:
        wav.setparams(params)
        wav.writeframes(frames[:keep])


def _say_here(settings: Settings, text: str, args: argparse.Namespace) -> None:
    from loaxa.cli._local import air_here
    from loaxa.speech.pipeline import build_speaker

    speaker = build_speaker(settings.tts, settings.text, settings.audio.sample_rate_hz)
    try:
        sentences = speaker.sentences(text, pause_s=args.silence_duration)
        air_here(settings, (c for c in speaker.chunks(sentences, rate=args.rate)), chime=not args.no_chime)
    finally:
        speaker.close()


def _through_daemon_or_here(
    settings: Settings, request: dict[str, Any], here: Callable[[], None], file: Path | None = None
) -> int:
    """A running daemon owns the audio device: ask it; otherwise play here.

    Interrupted (Ctrl-C), the connection closes and the daemon withdraws the bulletin.
    """
    from loaxa.control import request as ask

    try:
        reply = ask(settings.control_socket, {**request, "timeout_s": WAIT_S}, timeout_s=WAIT_S + 60, file=file)
    except ControlError as exc:
        if "no loaxa daemon" not in str(exc):
            raise
        here()
        print(_("played here (no daemon running)"))
        return 0
    print(_("played by the daemon: {detail}").format(detail=reply.get("detail") or reply.get("state")))
    return 0
