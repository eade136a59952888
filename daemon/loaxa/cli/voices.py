"""`loaxa voices list | install NAME | verify`: the Piper voices on this station."""

from __future__ import annotations

import argparse
from pathlib import Path

from loaxa.cli._common import add_config_arg, config_arg, settings_from
from loaxa.config import CONFIG_ENV, SYSTEM_CONFIG, TtsSettings, find_config
from loaxa.errors import ConfigError, VoiceError
from loaxa.speech import voices


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "voices",
        help="list, install and verify Piper voices",
        description="The Piper voices in tts.voices_dir (or --dir): list them, install one with its pinned "
        "size and SHA-256, or verify every installed one.",
    )
    _folder_args(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    where = argparse.ArgumentParser(add_help=False)
    _folder_args(where, argparse.SUPPRESS)  # also after the action: `voices install NAME --dir D`
    sub.add_parser("list", parents=[where], help="installed voices, sample rate, size, which is active").set_defaults(
        func=_list
    )
    install = sub.add_parser("install", parents=[where], help="download a voice, checking its pinned size and SHA-256")
    install.add_argument("name", help=f"voice name, e.g. {next(iter(voices.CATALOG))}")
    install.add_argument(
        "--url", help=f"repository base URL (default: ${voices.URL_ENV} or the public Piper voices repository)"
    )
    install.set_defaults(func=_install)
    sub.add_parser(
        "verify", parents=[where], help="check every installed voice: config, pinned digests, model load"
    ).set_defaults(func=_verify)


def _folder_args(parser: argparse.ArgumentParser, default: object) -> None:
    add_config_arg(parser)
    parser.add_argument(
        "--dir", type=Path, default=default, help="voices folder (default: tts.voices_dir from the configuration)"
    )


def _tts(args: argparse.Namespace) -> tuple[TtsSettings, Path]:
    """Settings from the configuration found as `run` finds it; `--dir` alone works without one."""
    folder = getattr(args, "dir", None)
    if find_config(config_arg(args)) is not None:
        tts = settings_from(args).tts
    elif folder is None:
        raise ConfigError(
            f"no configuration file: pass --config FILE, set {CONFIG_ENV}, create {SYSTEM_CONFIG}, "
            "or name the folder with --dir"
        )
    else:
        tts = TtsSettings()
    return tts, folder or tts.voices_dir


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    tts, folder = _tts(args)
    found = voices.list_voices(folder)
    console = Console()
    if not found:
        print(f"no voices in {folder}; install one with: loaxa voices install {next(iter(voices.CATALOG))}")
        return 0
    table = Table(title=f"Piper voices in {folder}")
    for column in ("", "name", "language", "quality", "sample rate", "size", "status"):
        # names must stay whole (a technician copies them into the config); the status may wrap
        table.add_column(
            column,
            justify="right" if column in ("sample rate", "size") else "left",
            no_wrap=column != "status",
            overflow="fold",
        )
    for v in found:
        active = tts.voice in (v.name, str(v.onnx))
        rate = f"{v.sample_rate:,} Hz" if v.sample_rate else "?"
        table.add_row(
            "*" if active else "", v.name, v.language, v.quality, rate, _size(v.size_bytes), v.problem or "ok"
        )
    console.print(table)
    if not any(tts.voice in (v.name, str(v.onnx)) for v in found):
        console.print(f"the configured voice {tts.voice!r} is not among them: the espeak fallback will speak")
    return 0


def _install(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    _, folder = _tts(args)
    tasks: dict[str, TaskID] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        path = voices.install(args.name, folder, url=args.url, progress=progress)
    print(f"installed {args.name}: {path} (size and SHA-256 match the pinned values)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    tts, folder = _tts(args)
    results = voices.verify(folder, deadline_s=tts.deadline_s)
    if not results:
        raise VoiceError(f"no voices in {folder} to verify")
    for name, problem in results:
        print(f"{'ok  ' if problem is None else 'FAIL'} {name}{': ' + problem if problem else ''}")
    return 0 if all(problem is None for _, problem in results) else 1


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
