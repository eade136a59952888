"""The compose form: what an editor fills in, the bulletin it makes, and the targets it reaches.

The form's fields are saved as they were typed (a draft may be unfinished);
the bulletin is built from them by `loaxa publish`'s own rules
(`build_command` over `BulletinOptions`) and checked as a station checks it
(`validate_command`), so a draft that passes here is one a station accepts.
Each broken rule is shown beside its field: a sentence in the reader's
language, then the rule's own words.

The targets are a tree from the stations registry (province → communes →
stations, with the names an admin gave them) plus the groups the stations
report; `/targets/count` says how many known stations a choice reaches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loaxa.cli.publish import BulletinOptions, OptionError, build_command
from loaxa.content import MAX_PARTS, check_content
from loaxa.errors import CommandError, LoaxaError
from loaxa.protocol import PRIORITIES, validate_command  # the protocol's words, most urgent first
from loaxa.province.console import drafts, targets
from loaxa.province.console.accounts import N_
from loaxa.province.console.web import Console, User, values
from loaxa.province.server.bulletins import target_of
from loaxa.timing import DAY_NAMES, parse_schedule

log = logging.getLogger(__name__)

KINDS = ("text", "audio", "parts")
WHEN = ("now", "at", "daily")


PRIORITY_LABELS = {
    "emergency": N_("Emergency: interrupts what is on air, at once, even in quiet hours"),
    "high": N_("High: before every waiting bulletin, without interrupting"),
    "normal": N_("Normal"),
    "low": N_("Low"),
}
PRIORITY_WORDS = {"emergency": N_("emergency"), "high": N_("high"), "normal": N_("normal"), "low": N_("low")}
DAY_LABELS = dict(
    zip(DAY_NAMES, (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun")), strict=True)
)
# What a broken rule of the shared validation means, field by field; the rule's own words follow.
LEADS = {
    "title": N_("The title is not valid"),
    "text": N_("The text cannot be sent as it is"),
    "audio": N_("The recording cannot be sent as it is"),
    "parts": N_("The parts cannot be sent as they are"),
    "priority": N_("This priority is not valid"),
    "at": N_("This time is not valid"),
    "daily": N_("These times of day are not valid"),
    "days": N_("These weekdays are not valid"),
    "from": N_("This date is not valid"),
    "until": N_("This date is not valid"),
    "repeat": N_("This number of plays is not valid"),
    "gap": N_("This gap is not valid"),
    "expires": N_("This expiry is not valid"),
    "targets": N_("These targets are not valid"),
    "form": N_("Stations would refuse this bulletin"),
}
# `loaxa publish`'s option, or the command's field, → the form's field.
OPTION_FIELDS = {"sha256": "audio", "start": "from", "gap_s": "gap", "schedule": "daily", "kind": "text", "id": "form"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a field: a sentence to translate, and the rule's own words when they say more."""

    message: str
    detail: str | None = None

    def say(self, gettext: Callable[[str], str]) -> str:
        text = gettext(self.message)
        return f"{text}: {self.detail}" if self.detail else text


# -- the form's fields --------------------------------------------------------------


def fields_of(form: dict[str, Any] | None) -> dict[str, Any]:
    """The compose form as it is saved in a draft: every field, as typed, with defaults filled in."""
    form = form or {}

    def one(name: str, default: str = "") -> str:
        got = values(form, name)
        return str(got[0]).strip() if got and not isinstance(got[0], dict) else default

    parts = []
    kinds, texts = values(form, "part_kind"), values(form, "part_text")
    urls, shas, names = values(form, "part_url"), values(form, "part_sha256"), values(form, "part_filename")
    for n, kind in enumerate(kinds):

        def at(column: list[Any], n: int = n) -> str:
            return str(column[n]).strip() if n < len(column) else ""

        part = {"kind": "audio" if kind == "audio" else "text", "text": at(texts)}
        part.update({"url": at(urls), "sha256": at(shas).lower(), "filename": at(names)})
        if part["text"] or part["url"]:
            parts.append(part)
    kind, when, priority = one("kind", "text"), one("when", "now"), one("priority", "normal")
    return {
        "title": one("title"),
        "kind": kind if kind in KINDS else "text",
        "text": str(values(form, "text")[0]) if values(form, "text") else "",
        "audio": {
            "url": one("audio_url"),
            "sha256": one("audio_sha256").lower(),
            "filename": one("audio_filename"),
            "duration_s": one("audio_duration"),
        },
        "parts": parts,
        "priority": priority if priority in PRIORITIES else "normal",
        "targets": sorted({str(v).strip() for v in values(form, "target") if str(v).strip()}),
        "when": when if when in WHEN else "now",
        "at": one("at"),
        "daily": one("daily"),
        "days": [d for d in DAY_NAMES if d in {str(v) for v in values(form, "days")}],
        "from": one("from"),
        "until": one("until"),
        "repeat": one("repeat", "1"),
        "gap": one("gap", "3"),
        "expires": one("expires"),
    }


def blank_fields() -> dict[str, Any]:
    """A new bulletin: text, normal priority, at once, played once."""
    return fields_of({})


@dataclass(frozen=True)
class Checked:
    """What the form makes: the bulletin (None while something is wrong) and the problems by field."""

    command: dict[str, Any] | None
    problems: dict[str, list[Problem]] = field(default_factory=dict)

    def said(self, gettext: Callable[[str], str]) -> dict[str, list[str]]:
        return {name: [p.say(gettext) for p in found] for name, found in self.problems.items()}


def check(
    fields: dict[str, Any], *, province: str, zone: str, bulletin_id: str, now: datetime | None = None
) -> Checked:
    """The bulletin `fields` make, by publish's rules and the station's validation; each problem by its field."""
    now = now or datetime.now(UTC)
    problems: dict[str, list[Problem]] = {}

    def add(name: str, problem: Problem) -> None:
        problems.setdefault(name, []).append(problem)

    if not fields["title"]:
        add("title", Problem(N_("Give the bulletin a title.")))
    elif len(fields["title"]) > 200:
        add("title", Problem(N_("The title is longer than 200 characters.")))
    _check_targets(fields["targets"], province, add)
    if fields["when"] == "at" and not fields["at"]:
        add("at", Problem(N_("Give the time it airs.")))
    if fields["when"] == "daily" and not fields["daily"]:
        add("daily", Problem(N_("Give the times of day it airs (HH:MM).")))
    content = _content(fields, add)
    repeat = _number(fields["repeat"], int, "repeat", add)
    gap = _number(fields["gap"], float, "gap", add)
    options = BulletinOptions(
        **content,
        id=bulletin_id,
        priority=fields["priority"],
        tz=zone,
        repeat=repeat,
        gap=gap,
        expires=fields["expires"] or None,
        **_when(fields),
    )
    command = None
    if not any(name in problems for name in ("text", "audio", "parts")):
        try:
            command = build_command(options, now)
        except OptionError as exc:
            name = OPTION_FIELDS.get(exc.option, exc.option)
            add(name if name in LEADS else "form", Problem(LEADS.get(name, LEADS["form"]), _rule(str(exc), exc.option)))
    if command is not None:
        try:
            validate_command({**command, "issued": now.isoformat(timespec="seconds")})
        except CommandError as exc:
            rules = str(exc).split("; ")
            rules += [r for r in _nested_rules(command) if r not in rules]
            for rule in rules:
                name = _field_of_rule(rule)
                add(name, Problem(LEADS[name], rule))
    return Checked(None if problems else command, problems)


def _nested_rules(command: dict[str, Any]) -> list[str]:
    """The content's and the schedule's rules: the station's model checks them only once every field passed."""
    found = []
    for rule in (
        lambda: check_content({kind: command.get(kind) for kind in ("text", "audio", "stream", "parts")}),
        lambda: parse_schedule(command.get("schedule")),
    ):
        try:
            rule()
        except CommandError as exc:
            found.append(str(exc))
    return found


def _content(fields: dict[str, Any], add: Callable[[str, Problem], None]) -> dict[str, Any]:
    kind = fields["kind"]
    if kind == "text":
        if not fields["text"].strip():
            add("text", Problem(N_("Write the text the voice will read.")))
        return {"text": fields["text"]}
    if kind == "audio":
        audio = fields["audio"]
        if not audio["url"] or not audio["sha256"]:
            add("audio", Problem(N_("Upload the recording to send.")))
        return {"audio_url": audio["url"] or None, "sha256": audio["sha256"] or None}
    parts = []
    for part in fields["parts"]:
        if part["kind"] == "audio":
            if not part["url"] or not part["sha256"]:
                add("parts", Problem(N_("Each recorded part needs its uploaded file.")))
            parts.append({"audio": {"url": part["url"], "sha256": part["sha256"]}})
        else:
            parts.append({"text": part["text"]})
    if not parts:
        add("parts", Problem(N_("Add at least one part: a text or a recording.")))
    elif len(parts) > MAX_PARTS:
        add("parts", Problem(N_("A bulletin has at most 20 parts.")))  # MAX_PARTS
    return {"parts": parts}


def _when(fields: dict[str, Any]) -> dict[str, Any]:
    if fields["when"] == "at":
        return {"at": fields["at"] or None}
    if fields["when"] == "daily":
        return {
            "daily": fields["daily"] or None,
            "days": ",".join(fields["days"]) or None,
            "start": fields["from"] or None,
            "until": fields["until"] or None,
        }
    return {}


def _number(raw: str, kind: type, name: str, add: Callable[[str, Problem], None]) -> Any:
    if raw == "":
        return None
    try:
        return kind(raw.replace(",", ".")) if kind is float else kind(raw)
    except ValueError:
        add(name, Problem(N_("Write a whole number.") if kind is int else N_("Write a number of seconds.")))
        return None


def _check_targets(targets: list[str], province: str, add: Callable[[str, Problem], None]) -> None:
    if not targets:
        add("targets", Problem(N_("Choose at least one target: the province, a commune, a station or a group.")))
    for to in targets:
        try:
            target = target_of(to)
        except LoaxaError as exc:
            add("targets", Problem(LEADS["targets"], str(exc)))
            continue
        if target.province != province:
            add("targets", Problem(LEADS["targets"], f"{to}: not in province {province}"))


def _rule(message: str, option: str) -> str:
    """publish's words without the command-line option they start with (the field is beside them)."""
    return message.removeprefix(f"--{option} ").removeprefix(f"--{option}: ")


def _field_of_rule(rule: str) -> str:
    """The form field a validation message names first (`schedule.daily: …` → daily, `gap_s: …` → gap)."""
    key = rule.split(":", 1)[0].strip() if ":" in rule else ""
    head, _dot, rest = key.partition(".")
    if head == "schedule":
        sub = rest.split(".")[0] or ("until" if rule.split(":", 1)[1].strip().startswith("until") else "")
        return {"at": "at", "days": "days", "from": "from", "until": "until"}.get(sub, "daily")
    if head in ("text", "audio", "parts", "priority", "repeat", "expires"):
        return head
    if head == "gap_s":
        return "gap"
    if rule.startswith("exactly one of"):
        return "text"
    return "form"


def bulletin_id_for(draft_id: int, now: datetime | None = None) -> str:
    """The id a draft's bulletin gets: its number and when it was last saved (`d12-20261201T153000`)."""
    now = now or datetime.now(UTC)
    return f"d{draft_id}-{now.strftime('%Y%m%dT%H%M%S')}"


# -- what the pages show ------------------------------------------------------------


def schedule_words(fields: dict[str, Any], gettext: Callable[[str], str]) -> str:
    """The form's schedule in a sentence for the approver."""
    _ = gettext
    if fields["when"] == "at":
        return _("Once, at {time}").format(time=fields["at"].replace("T", " "))
    if fields["when"] == "daily":
        days = ", ".join(_(DAY_LABELS[d]) for d in fields["days"]) or _("every day")
        text = _("Daily at {times}, {days}").format(times=fields["daily"], days=days)
        if fields["from"]:
            text += " " + _("from {date}").format(date=fields["from"])
        if fields["until"]:
            text += " " + _("until {date}").format(date=fields["until"])
        return text
    return _("At once, as soon as the stations receive it")


def zone_offset(zone: str, now: datetime | None = None) -> int:
    """The province's UTC offset in minutes now (the page converts an imported alert's times with it)."""
    offset = (now or datetime.now(UTC)).astimezone(ZoneInfo(zone)).utcoffset()
    return int(offset.total_seconds() // 60) if offset else 0


def form_values(console: Console, request: Request, user: User, fields: dict[str, Any], **more: Any) -> dict[str, Any]:
    """Everything compose.html needs besides the draft."""
    s = console.ctx.settings
    found = targets.tree(console.ctx.db, s.province.id)
    return {
        "fields": fields,
        "tree": found,
        "extra_targets": [to for to in fields["targets"] if to not in found.paths()],
        "priorities": PRIORITIES,
        "priority_labels": PRIORITY_LABELS,
        "days": DAY_NAMES,
        "day_labels": DAY_LABELS,
        "max_parts": MAX_PARTS,
        "zone": s.province.timezone,
        "zone_offset": zone_offset(s.province.timezone),
        "problems": {},
        "can_send_now": user.can("approver"),
        **more,
    }


def routes(console: Console) -> list[BaseRoute]:
    from loaxa.province.console import vetting

    ctx = console.ctx
    province = ctx.settings.province.id

    def compose(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        if form is None:
            return console.render(request, "compose.html", **form_values(console, request, user, blank_fields()))
        fields = fields_of(form)
        draft_id = drafts.create(ctx.db, user.name, fields["title"] or "?", fields, fields["targets"])
        request.state.audit_detail = f"draft {draft_id} written"
        return vetting.after_edit(console, request, user, draft_id, fields, str(form.get("action") or "save"))

    def target_count(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        chosen = request.query_params.getlist("target")
        reached, bad = targets.count(ctx.db, province, chosen)
        return console.render(request, "compose_count.html", reached=reached, bad=bad, chosen=chosen)

    return [
        Route("/compose", console.page("editor")(compose), methods=["GET", "POST"]),
        Route("/targets/count", console.page("editor")(target_count), methods=["GET"]),
    ]
