#!/usr/bin/env python3
"""Write the Mosquitto ACL (and password file) for a province broker.

Reads a stations list (see config/mosquitto/stations.example.yaml) and writes
one `user` block per station and per operator. A station's username is
`province/commune/station`; it may read only the command topics that address
it and write only its own `state`, `event` and `response/…` topics. An
operator may write the command topics of its provinces and read their
stations' state, events and responses.

The ACL names logins, so it protects a station only where a login cannot
borrow another's client id: the listener the stations use must say
`use_username_as_clientid true` (config/mosquitto/loaxa.conf does). Without
it, station B's login connecting with A's client id takes A's session over.

    scripts/make_broker_acl.py stations.yaml --acl /etc/mosquitto/loaxa/acl \\
        --passwd /etc/mosquitto/loaxa/passwd --passwords secrets.yaml [--new-passwords]

`secrets.yaml` maps username to password. With --new-passwords, users it
lacks get a random password, written back to it (mode 0600). The password
file is hashed by `mosquitto_passwd -U`, so no password appears in a process
list. Exit code 0 on success, 2 when the input is wrong (every error listed).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

try:  # the topic layout is the installed package's, so the ACL always matches what stations use
    from loaxa.topics import GROUP, REST, SLUG, Topics, province_commands, province_reports, province_responses
except ImportError:
    sys.exit("error: the loaxa package is not installed in this Python (pip install -e . in the repository)")

OPERATOR = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
PREFIX = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
DEFAULT_PREFIX = "loaxa/v1"
RESERVED_COMMUNES = {GROUP}  # `{p}/group/{g}/cmd` would clash with `{p}/{c}/{s}/cmd`


class InputError(Exception):
    """The stations list is wrong; the message lists every problem."""


@dataclass(frozen=True)
class Station:
    province: str
    commune: str
    station: str
    groups: tuple[str, ...]

    @property
    def username(self) -> str:
        return f"{self.province}/{self.commune}/{self.station}"


@dataclass(frozen=True)
class Operator:
    username: str
    provinces: tuple[str, ...]


def _slug(value: object, where: str, errors: list[str]) -> str:
    if not isinstance(value, str) or not SLUG.match(value):
        errors.append(f"{where}: {value!r} is not a slug (1-40 of a-z 0-9 -)")
        return ""
    return value


def parse(data: object) -> tuple[str, list[Station], list[Operator]]:
    """Validate the stations document; InputError lists every problem at once."""
    errors: list[str] = []
    if not isinstance(data, dict):
        raise InputError("the stations file must be a mapping with 'stations' (and 'operators')")
    unknown = set(data) - {"prefix", "stations", "operators"}
    if unknown:
        errors.append(f"unknown top-level keys: {', '.join(sorted(map(str, unknown)))}")
    prefix = data.get("prefix", DEFAULT_PREFIX)
    if not isinstance(prefix, str) or not PREFIX.match(prefix):
        errors.append(f"prefix: {prefix!r} is not a topic prefix like 'loaxa/v1' (no wildcards, no empty levels)")
    stations: list[Station] = []
    seen: set[str] = set()
    for i, item in enumerate(data.get("stations") or []):
        where = f"stations[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: expected a mapping with province, commune, station, groups")
            continue
        extra = set(item) - {"province", "commune", "station", "groups"}
        if extra:
            errors.append(f"{where}: unknown keys {', '.join(sorted(map(str, extra)))}")
        p = _slug(item.get("province"), f"{where}.province", errors)
        c = _slug(item.get("commune"), f"{where}.commune", errors)
        s = _slug(item.get("station"), f"{where}.station", errors)
        if c in RESERVED_COMMUNES:
            errors.append(f"{where}.commune: {c!r} is reserved (it would clash with group topics)")
        groups_raw = item.get("groups") or []
        if not isinstance(groups_raw, list):
            errors.append(f"{where}.groups: expected a list of slugs")
            groups_raw = []
        groups = tuple(sorted({_slug(g, f"{where}.groups", errors) for g in groups_raw}))
        station = Station(p, c, s, groups)
        if station.username in seen:
            errors.append(f"{where}: {station.username} is listed twice")
        seen.add(station.username)
        stations.append(station)
    operators: list[Operator] = []
    for i, item in enumerate(data.get("operators") or []):
        where = f"operators[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: expected a mapping with username and province (or provinces)")
            continue
        name = item.get("username")
        if not isinstance(name, str) or not OPERATOR.match(name):
            errors.append(f"{where}.username: {name!r} is not 1-64 of A-Z a-z 0-9 . _ @ -")
            name = ""
        elif name in seen:
            errors.append(f"{where}.username: {name!r} is already used")
        seen.add(name)
        provinces_raw = item.get("provinces", [item["province"]] if "province" in item else None)
        if not isinstance(provinces_raw, list) or not provinces_raw:
            errors.append(f"{where}: give 'province' or a non-empty 'provinces' list")
            provinces_raw = []
        provinces = tuple(sorted({_slug(p, f"{where}.province", errors) for p in provinces_raw}))
        operators.append(Operator(name, provinces))
    if not stations and not operators:
        errors.append("no stations and no operators: nothing to write")
    if errors:
        raise InputError("\n".join(errors))
    return prefix, stations, operators


def render_acl(prefix: str, stations: list[Station], operators: list[Operator], source: str = "") -> str:
    """The ACL text: deterministic, so a re-run after an edit gives a clean diff."""
    lines = [
        f"# Generated by scripts/make_broker_acl.py{' from ' + source if source else ''}; do not edit by hand.",
        "# No topic lines before the first `user`: anonymous clients get nothing.",
        "# Safe only with `use_username_as_clientid true` on the stations' listener (see loaxa.conf).",
        "",
    ]
    for st in sorted(stations, key=lambda s: s.username):
        topics = Topics(prefix, st.province, st.commune, st.station, st.groups)
        lines += [
            f"user {st.username}",
            *(f"topic read {t}" for t in topics.commands),
            f"topic write {topics.state}",
            f"topic write {topics.event}",
            f"topic write {topics.response}/{REST}",
            "",
        ]
    for op in sorted(operators, key=lambda o: o.username):
        lines.append(f"user {op.username}")
        for p in op.provinces:
            lines += [f"topic write {t}" for t in province_commands(prefix, p)]
            lines += [f"topic read {t}" for t in province_reports(prefix, p)]
            lines.append(f"topic read {province_responses(prefix, p)}")
        lines.append("")
    return "\n".join(lines)


def load_passwords(path: Path, users: list[str], create_missing: bool) -> dict[str, str]:
    """username -> password for every user; new random ones written back when asked."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read passwords file {path}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of username to password")
    passwords = {str(k): str(v) for k, v in data.items()}
    # `mosquitto_passwd -U` reads `user:password` lines and cuts at a colon.
    bad = [u for u, pw in passwords.items() if not pw or any(c in pw for c in ":\r\n")]
    if bad:
        raise InputError(f"{path}: empty password, or one with ':' or a line break, for {', '.join(sorted(bad))}")
    missing = [u for u in users if u not in passwords]
    if missing and not create_missing:
        raise InputError(f"{path}: no password for {', '.join(missing)} (add them, or use --new-passwords)")
    if missing:
        for user in missing:
            passwords[user] = secrets.token_urlsafe(18)
        body = yaml.safe_dump({u: passwords[u] for u in sorted(passwords)}, allow_unicode=True, sort_keys=False)
        _write_private(path, "# Broker passwords, plain text: keep this file secret.\n" + body)
        print(f"added {len(missing)} new password(s) to {path}", file=sys.stderr)
    return {u: passwords[u] for u in users}


def write_password_file(path: Path, passwords: dict[str, str]) -> None:
    """Hash `user:password` lines with `mosquitto_passwd -U` and put the result at `path`."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise InputError("mosquitto_passwd not found (Debian package 'mosquitto')")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp makes it 0600
            fh.writelines(f"{user}:{pw}\n" for user, pw in passwords.items())
        result = subprocess.run([tool, "-U", str(tmp)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise InputError(f"mosquitto_passwd -U failed: {result.stderr.strip() or result.stdout.strip()}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_private(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp_name, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stations", type=Path, help="stations YAML (see config/mosquitto/stations.example.yaml)")
    ap.add_argument("--acl", type=Path, required=True, help="ACL file to write (mosquitto acl_file)")
    ap.add_argument("--passwd", type=Path, help="password file to write (mosquitto password_file)")
    ap.add_argument("--passwords", type=Path, help="YAML mapping username: password (needed with --passwd)")
    ap.add_argument("--new-passwords", action="store_true", help="make random passwords for users without one")
    ap.add_argument("--prefix", help=f"topic prefix (default: the file's 'prefix', else {DEFAULT_PREFIX})")
    args = ap.parse_args(argv)
    try:
        if args.passwd and not args.passwords:
            raise InputError("--passwd needs --passwords FILE")
        try:
            data = yaml.safe_load(args.stations.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read {args.stations}: {exc}") from exc
        if isinstance(data, dict) and args.prefix:
            data = {**data, "prefix": args.prefix}
        prefix, stations, operators = parse(data)
        users = [s.username for s in stations] + [o.username for o in operators]
        # Check the passwords before writing anything: no ACL without its users.
        passwords = load_passwords(args.passwords, users, args.new_passwords) if args.passwd else {}
        args.acl.write_text(render_acl(prefix, stations, operators, args.stations.name), encoding="utf-8")
        print(f"wrote {args.acl}: {len(stations)} station(s), {len(operators)} operator(s)", file=sys.stderr)
        if args.passwd:
            write_password_file(args.passwd, passwords)
            print(f"wrote {args.passwd}: {len(users)} user(s)", file=sys.stderr)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
