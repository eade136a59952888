"""`loaxa publish`: send a bulletin (or a cancel) to stations and follow the receipts.

loaxa publish --province hn --text "..." --priority high
loaxa publish --commune hn/ba-vi --daily 05:30,17:00 --days mon,wed,fri --file bulletin.json
loaxa publish --group hn/flood --audio-url https://… --sha256 … --expires +6h --key issuer.key
loaxa publish --province hn --cancel b-20250914-storm
loaxa publish --commune hn/ba-vi --part-text "..." --part-audio https://…/hmong.mp3 --sha256 …

`build_command` holds the rules that turn options into a command; the
province console's compose form fills the same fields (`BulletinOptions`)
and gets each broken rule as an `OptionError` naming its option.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loaxa.errors import LoaxaError
from loaxa.protocol import ID_PATTERN, PRIORITIES
from loaxa.province.send import add_send_args, add_target_args, deliver, finish, targets_from

DURATION = re.compile(r"^\+?(\d+(?:\.\d+)?)\s*([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class OptionError(LoaxaError):
    """One option breaks a rule; `option` names it without its dashes (`at`, `expires`), for a form to show."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class BulletinOptions:
    """What the options say about one command, as `build_command` reads them (the parsed arguments have these)."""

    text: str | None = None
    file: Path | None = None
    audio_url: str | None = None
    sha256: str | None = None
    parts: list[dict[str, Any]] | None = None  # as --part-text/--part-audio build them
    cancel: str | None = None
    id: str | None = None
    rev: int | None = None
    priority: str | None = None
    at: str | None = None
    daily: str | None = None  # "05:30,17:00"
    days: str | None = None  # "mon,wed"
    start: str | None = None  # --from
    until: str | None = None
    expires: str | None = None
    tz: str = "Asia/Ho_Chi_Minh"
    repeat: int | None = None
    gap: float | None = None
    volume: float | None = None
    rate: float | None = None
    voice: str | None = None
    no_chime: bool = False


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish",
        help="send a bulletin to stations and follow their receipts",
        description="Send a bulletin (or a cancel) to one station, a commune, a group or a province, "
        "and show which stations received, started and finished it.",
    )
    add_target_args(p)
    group = p.add_argument_group("content (exactly one)")
    what = group.add_mutually_exclusive_group()
    what.add_argument("--text", help="Vietnamese text to read")
    what.add_argument("--file", type=Path, help="a bulletin command as JSON (options below override its fields)")
    what.add_argument("--audio-url", help="a recorded file (WAV, MP3, OGG) to play; needs --sha256")
    what.add_argument("--cancel", metavar="ID", help="cancel bulletin ID instead of sending one")
    group.add_argument(
        "--part-text", dest="parts", action=_Part, metavar="TEXT", help="a part read by the voice (repeat, in order)"
    )
    group.add_argument(
        "--part-audio",
        dest="parts",
        action=_Part,
        metavar="URL",
        help="a recorded part (repeat, in order, each followed by its --sha256): parts air in one session",
    )
    p.add_argument(
        "--sha256", action=_Sha, help="SHA-256 (hex) of the --audio-url file, or of the --part-audio before it"
    )
    p.add_argument("--id", help="bulletin id (default: generated from the time)")
    p.add_argument("--rev", type=int, help="revision; a higher rev of a known id replaces it")
    p.add_argument("--priority", choices=PRIORITIES, help="default normal")
    s = p.add_argument_group("when")
    s.add_argument("--at", help="once, at this time: ISO 8601, or HH:MM (next one), in --tz without an offset")
    s.add_argument("--daily", metavar="HH:MM,…", help="every day at these times, e.g. 05:30,17:00")
    s.add_argument("--days", metavar="mon,…", help="with --daily: only these days")
    s.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="with --daily: first day")
    s.add_argument("--until", metavar="YYYY-MM-DD", help="with --daily: last day")
    s.add_argument("--expires", help="never start after: ISO 8601 time or a duration from now (+90m, +6h, +2d)")
    s.add_argument("--tz", default="Asia/Ho_Chi_Minh", help="time zone for times without an offset")
    o = p.add_argument_group("how")
    o.add_argument("--repeat", type=int, help="plays per occurrence (1-10)")
    o.add_argument("--gap", type=float, help="seconds of silence between repeats")
    o.add_argument("--volume", type=float, help="0-1, instead of the station volume")
    o.add_argument("--rate", type=float, help="speaking rate 0.5-2")
    o.add_argument("--voice", help="a voice installed on the stations")
    o.add_argument("--no-chime", action="store_true", help="no chime before and after")
    add_send_args(p)
    p.set_defaults(func=publish)


class _Part(argparse.Action):
    """`--part-text` and `--part-audio` add to one list, in the order given."""

    def __call__(self, parser: Any, ns: argparse.Namespace, value: Any, option: str | None = None) -> None:
        parts = list(getattr(ns, "parts", None) or [])
        parts.append({"text": value} if option == "--part-text" else {"audio": {"url": value}})
        ns.parts = parts


class _Sha(argparse.Action):
    """`--sha256` right after a `--part-audio` is that part's; otherwise the `--audio-url` file's."""

    def __call__(self, parser: Any, ns: argparse.Namespace, value: Any, option: str | None = None) -> None:
        parts = getattr(ns, "parts", None)
        if parts and "audio" in parts[-1] and "sha256" not in parts[-1]["audio"]:
            parts[-1]["audio"]["sha256"] = str(value).lower()
        else:
            ns.sha256 = value


def _parts(args: argparse.Namespace | BulletinOptions) -> list[dict[str, Any]] | None:
    parts = getattr(args, "parts", None)
    if not parts:
        return None
    if args.text is not None or args.audio_url or args.cancel:
        raise OptionError(
            "parts", "--part-text/--part-audio make the whole bulletin: no --text, --audio-url or --cancel with them"
        )
    for part in parts:
        if "audio" in part and "sha256" not in part["audio"]:
            raise OptionError("parts", f"--part-audio {part['audio']['url']} needs a --sha256 right after it")
    return list(parts)


def publish(args: argparse.Namespace) -> int:
    targets = targets_from(args)
    command = finish(build_command(args), args.key)
    return deliver(args, targets, command)


def build_command(args: argparse.Namespace | BulletinOptions, now: datetime | None = None) -> dict[str, Any]:
    """The command the options describe (unsigned, without `issued`); OptionError names a broken rule's option."""
    now = now or datetime.now(UTC)
    tz = _zone(args.tz)
    if args.cancel:
        _check_id(args.cancel)
        return {"type": "cancel", "id": args.cancel}
    parts = _parts(args)
    if not (parts or args.text is not None or args.file or args.audio_url):
        raise OptionError(
            "text", "one of --text, --file, --audio-url, --part-text/--part-audio or --cancel is required"
        )
    command: dict[str, Any] = _from_file(args.file) if args.file else {"type": "bulletin"}
    if parts:
        for kind in ("text", "audio", "stream"):
            command.pop(kind, None)
        command["parts"] = parts
    if args.text is not None:
        command["text"] = args.text
    if args.audio_url:
        if not args.sha256:
            raise OptionError("sha256", "--audio-url needs --sha256 (stations check the file they fetch)")
        command["audio"] = {"url": args.audio_url, "sha256": args.sha256.lower()}
    elif args.sha256:
        raise OptionError("sha256", "--sha256 goes with --audio-url")
    if args.id:
        _check_id(args.id)
        command["id"] = args.id
    command.setdefault("id", now.strftime("b-%Y%m%dT%H%M%S") + f"-{now.microsecond // 1000:03d}")
    fields = {
        "rev": args.rev,
        "priority": args.priority,
        "repeat": args.repeat,
        "gap_s": args.gap,
        "volume": args.volume,
        "rate": args.rate,
        "voice": args.voice,
    }
    command.update({k: v for k, v in fields.items() if v is not None})
    if args.no_chime:
        command["chime"] = False
    schedule = _schedule(args, tz, now)
    if schedule:
        command["schedule"] = schedule
    if args.expires:
        command["expires"] = parse_when(args.expires, tz, now, what="--expires").isoformat(timespec="seconds")
    return command


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LoaxaError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise LoaxaError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise LoaxaError(f"{path} must hold one JSON object (a bulletin)")
    if data.setdefault("type", "bulletin") != "bulletin":
        raise LoaxaError(f"{path}: type is {data['type']!r}; --file takes a bulletin (use --cancel to cancel)")
    for key in ("issued", "kid", "sig"):
        data.pop(key, None)  # stamped and signed again when sent
    return data


def _schedule(args: argparse.Namespace | BulletinOptions, tz: ZoneInfo, now: datetime) -> dict[str, Any] | None:
    if args.at and args.daily:
        raise OptionError("at", "--at and --daily do not go together (once, or every day)")
    if (args.days or args.start or args.until) and not args.daily:
        raise OptionError("daily", "--days, --from and --until go with --daily")
    if args.at:
        return {"at": parse_when(args.at, tz, now, what="--at", clock=True).isoformat(timespec="seconds")}
    if not args.daily:
        return None
    schedule: dict[str, Any] = {"daily": [t.strip() for t in args.daily.split(",") if t.strip()]}
    if args.days:
        schedule["days"] = [d.strip().lower()[:3] for d in args.days.split(",") if d.strip()]
    for key, value in (("from", args.start), ("until", args.until)):
        if value:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise OptionError(key, f"--{key} {value!r} is not a date YYYY-MM-DD") from None
            schedule[key] = value
    return schedule


def parse_when(value: str, tz: ZoneInfo, now: datetime, what: str, clock: bool = False) -> datetime:
    """ISO 8601 (offset optional: `tz` then), `+90m`-style durations, and with `clock` HH:MM."""
    value = value.strip()
    m = DURATION.match(value)
    if m:
        return (now + timedelta(seconds=float(m.group(1)) * UNITS[m.group(2)])).astimezone(tz)
    if clock and re.match(r"^\d{1,2}:\d{2}$", value):
        hh, mm = (int(x) for x in value.split(":"))
        if hh > 23 or mm > 59:
            raise OptionError(what.lstrip("-"), f"{what} {value!r} is not a time of day")
        local = now.astimezone(tz)
        at = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
        return at if at > local else (at + timedelta(days=1)).replace(hour=hh, minute=mm)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        hint = "2025-09-14T17:00+07:00, +6h" + (", 17:00" if clock else "")
        raise OptionError(what.lstrip("-"), f"{what} {value!r} is not a time (e.g. {hint})") from None
    return when if when.tzinfo else when.replace(tzinfo=tz)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise OptionError("tz", f"--tz {name!r} is not a time zone (e.g. Asia/Ho_Chi_Minh)") from None


def _check_id(value: str) -> None:
    if not re.match(ID_PATTERN, value):
        raise OptionError("id", f"id {value!r}: must be 1-64 of A-Z a-z 0-9 . _ : -")
