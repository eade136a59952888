"""`loaxa province …`: the province server and its tools.

loaxa province serve --config province.yaml
loaxa province check --config province.yaml
loaxa province token add NAME --scope read|send --config province.yaml
loaxa province token revoke NAME --config province.yaml
loaxa province stations --config province.yaml [--json]
loaxa province report --scope hn/ba-vi --period week --date 2026-12-01 --format xlsx --output week.xlsx
loaxa province user add NAME --role viewer|editor|approver|admin [--admin] --config province.yaml
loaxa province user list|passwd NAME|disable NAME --config province.yaml

The server's libraries (SQLAlchemy, Alembic, Starlette, uvicorn) are the
`province` extra and are imported only when one of these commands runs: a
station never loads them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from loaxa.i18n import _


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "province",
        help="the province server: every station's receipts and state in one database, an HTTP API",
        description="Run the province server, or manage its API tokens and read its registry.",
    )
    psub = p.add_subparsers(dest="province_command", metavar="ACTION", required=True)

    def action(name: str, help: str, func: Any) -> argparse.ArgumentParser:
        a = psub.add_parser(name, help=help, description=help)
        a.add_argument("-c", "--config", help="province server configuration (default: $LOAXA_PROVINCE_CONFIG)")
        a.set_defaults(func=_with_extra(func))
        return a

    action("serve", "run the server: MQTT session, database, HTTP API", serve)
    action("check", "validate the configuration, open and migrate the database, print the effective settings", check)
    st = action("stations", "the stations registry: status, last seen, voice, clock, faults", stations)
    st.add_argument("--json", action="store_true", help="a JSON list")
    rep = action(
        "report", "as-run report of a station, commune, group or the province for a day, week, month or year", report
    )
    rep.add_argument("--scope", required=True, metavar="TARGET", help="P, P/C, P/C/S or P/group/G")
    rep.add_argument("--period", choices=("day", "week", "month", "year"), default="day")
    rep.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="a day inside the period (province time zone)")
    rep.add_argument(
        "--format", choices=("json", "csv", "xlsx"), default="json", help="csv and xlsx: the log book rows"
    )
    rep.add_argument("--output", metavar="FILE", help="write here instead of stdout (xlsx needs it)")
    tok = action("token", "make or revoke an API token", token)
    tok.add_argument("what", choices=("add", "revoke", "list"))
    tok.add_argument("name", nargs="?", help="the client's name (it is written in the audit log)")
    tok.add_argument("--scope", choices=("read", "send"), default="read", help="send also allows read (default read)")
    # -- the console's accounts
    usr = action("user", _("make, list, change or disable a console user"), user)
    usr.add_argument("what", choices=("add", "list", "passwd", "disable"))
    usr.add_argument("name", nargs="?", help=_("the user's login name"))
    usr.add_argument(
        "--role", choices=("viewer", "editor", "approver", "admin"), help=_("add: the user's role (default viewer)")
    )
    usr.add_argument("--admin", action="store_true", help=_("add: the same as --role admin"))
    usr.add_argument(
        "--password-stdin", action="store_true", help=_("read the password from stdin (also when stdin is not a TTY)")
    )


SERVER_LIBRARIES = ("sqlalchemy", "alembic", "starlette", "uvicorn", "psycopg", "openpyxl")


def _with_extra(func: Any) -> Any:
    """`func`, saying in one line what to install when the server's libraries are missing (a station install)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args) or 0)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in SERVER_LIBRARIES:
                raise
            from loaxa.errors import ConfigError

            raise ConfigError(
                f"the province server needs its libraries ({exc.name} is missing): "
                "install the `province` extra, as docs/province-server.md says"
            ) from None

    return run


def _settings(args: argparse.Namespace) -> Any:
    from loaxa.province.server.settings import config_path, load_settings

    return load_settings(config_path(args.config))


def serve(args: argparse.Namespace) -> int:
    from loaxa.province.server.service import ProvinceServer

    return ProvinceServer(_settings(args)).run()


def check(args: argparse.Namespace) -> int:
    from loaxa.province.server.database import Database
    from loaxa.province.server.settings import masked

    settings = _settings(args)
    db = Database.open(settings)
    db.close()
    print(json.dumps(masked(settings), ensure_ascii=False, indent=1))
    print(f"database {db.where}: ready", file=sys.stderr)
    return 0


def stations(args: argparse.Namespace) -> int:
    from loaxa.province.server.database import Database
    from loaxa.province.server.registry import list_stations

    settings = _settings(args)
    db = Database.open(settings)
    try:
        rows = list_stations(db, settings.stations.silent_after_s)
    finally:
        db.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    for r in rows:
        faults = "; ".join(x for x in (r["audio_error"], r["amplifier_fault"], r["storage_fault"]) if x)
        voice = f"{r['voice']}{' (fallback)' if r['voice_fallback'] else ''}"
        print(f"{r['station']}\t{r['status']}\tsince {r['since']}\tlast seen {r['last_seen']}\t{voice}\t{faults}")
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("online", "offline", "silent")}
    print(f"{len(rows)} stations: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def report(args: argparse.Namespace) -> int:
    from datetime import date
    from zoneinfo import ZoneInfo

    from loaxa.errors import LoaxaError
    from loaxa.province.server import asrun
    from loaxa.province.server.database import Database

    settings = _settings(args)
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        raise LoaxaError(f"--date must be YYYY-MM-DD, got {args.date!r}") from None
    if args.format == "xlsx" and not args.output:
        raise LoaxaError("--format xlsx needs --output FILE")
    db = Database.open(settings)
    try:
        result = asrun.report(db, args.scope, args.period, day, ZoneInfo(settings.province.timezone))
    finally:
        db.close()
    if args.format == "json":
        data = json.dumps(result, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
    else:
        data = asrun.to_csv(result) if args.format == "csv" else asrun.to_xlsx(result)
    if args.output:
        with open(args.output, "wb") as out:
            out.write(data)
    else:
        sys.stdout.buffer.write(data)
    return 0


def token(args: argparse.Namespace) -> int:
    from loaxa.errors import LoaxaError
    from loaxa.province.server import tokens
    from loaxa.province.server.database import Database

    db = Database.open(_settings(args))
    try:
        if args.what == "list":
            for row in tokens.listing(db):
                print(f"{row['name']}\t{row['scopes']}\t{'revoked' if row['revoked'] else 'active'}")
            return 0
        if not args.name:
            raise LoaxaError(f"loaxa province token {args.what} needs a NAME")
        if args.what == "add":
            print(tokens.create(db, args.name, [args.scope]))  # shown once; only its hash is kept
            print(f"token {args.name!r} ({args.scope}): keep it now, it is not shown again", file=sys.stderr)
        else:
            tokens.revoke(db, args.name)
            print(f"token {args.name!r} revoked", file=sys.stderr)
        _audit(db, f"token {args.what} {args.name}", args.scope if args.what == "add" else None)
    finally:
        db.close()
    return 0


def _audit(db: Any, action: str, detail: str | None) -> None:
    """A change made at the server's own terminal goes to the audit log too, named by the system account."""
    import getpass

    from loaxa.province.server import tokens

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    tokens.audit(
        db,
        token=None,
        user=f"cli:{who}",
        method="CLI",
        path=f"province {action}",
        status=200,
        client="local",
        detail=detail,
    )


def _password(args: argparse.Namespace) -> str:
    """The new password: stdin's first line when it is not a terminal (or --password-stdin), else asked twice."""
    import getpass

    from loaxa.errors import LoaxaError

    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(_("Password for {name}: ").format(name=args.name))
    if getpass.getpass(_("The same password again: ")) != first:
        raise LoaxaError(_("the two passwords differ; nothing was changed"))
    return first


def user(args: argparse.Namespace) -> int:
    from loaxa.errors import LoaxaError
    from loaxa.province.console import accounts
    from loaxa.province.server.database import Database

    db = Database.open(_settings(args))
    try:
        if args.what == "list":
            for row in accounts.list_users(db):
                state = _("disabled") if row["disabled_at"] else _("active")
                print(f"{row['name']}\t{row['role']}\t{state}")
            return 0
        if not args.name:
            raise LoaxaError(_("loaxa province user {action} needs a NAME").format(action=args.what))
        if args.what == "add":
            role = "admin" if args.admin else (args.role or "viewer")
            accounts.add_user(db, args.name, role, _password(args))
            print(_("user {name} added ({role})").format(name=accounts.normal_name(args.name), role=role))
        elif args.what == "passwd":
            accounts.set_password(db, args.name, _password(args))
            print(_("password of {name} changed").format(name=accounts.normal_name(args.name)))
        else:
            accounts.disable_user(db, args.name)
            print(_("user {name} disabled: their sessions have ended").format(name=accounts.normal_name(args.name)))
        _audit(db, f"user {args.what} {accounts.normal_name(args.name)}", role if args.what == "add" else None)
    finally:
        db.close()
    return 0
