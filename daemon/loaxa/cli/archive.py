"""`loaxa archive list|export`: the on-air archive's files, from the station's store."""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.cli.log import parse_since
from loaxa.config import Settings
from loaxa.errors import ConfigError, LoaxaError, StoreError
from loaxa.hashing import sha256_file
from loaxa.store import archived, open_readonly


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("archive", help="list or export what went on air (archive.enabled)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="archived on-air sessions, oldest first")
    add_config_arg(listing)
    listing.add_argument("--since", default="7d", help="a duration back (12h, 7d) or an ISO date/time (default 7d)")
    listing.add_argument("--json", action="store_true", help="one JSON object per file")
    listing.set_defaults(func=list_files)
    export = actions.add_parser("export", help="copy one archived file out, its SHA-256 checked")
    add_config_arg(export)
    export.add_argument("id", type=int, help="the file's number, from `loaxa archive list`")
    export.add_argument("out", help="where to write it (a file, or a folder to keep its name)")
    export.set_defaults(func=export_file)


def _open(settings: Settings) -> sqlite3.Connection:
    db_path = settings.storage.dir / "station.db"
    if not db_path.exists():
        raise StoreError(f"no station store at {db_path}; has the daemon run with this config?")
    return open_readonly(db_path)


def list_files(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        since = parse_since(args.since, datetime.now(UTC))
    except ConfigError as exc:
        raise LoaxaError(str(exc).replace("--since", "archive list --since")) from None
    db = _open(settings)
    try:
        found = archived.listing(db, since.timestamp())
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the archive from the station store: {exc}") from None
    finally:
        db.close()
    tz = settings.station.tz
    for f in found:
        started = datetime.fromtimestamp(f.started_at, tz).isoformat(timespec="seconds")
        if args.json:
            entry = {"id": f.aid, "started": started, "bulletin": f.id, "seconds": round(f.seconds, 1)}
            print(json.dumps({**entry, "bytes": f.bytes, "sha256": f.sha256, "file": f.name}, ensure_ascii=False))
        else:
            print(f"{f.aid:>5}  {started}  {f.seconds:7.1f} s  {f.bytes / 1000:8.1f} kB  {f.id or '-'}  {f.name}")
    if not found and not args.json:
        print("nothing archived in that time" + ("" if settings.archive.enabled else " (archive.enabled is false)"))
    return 0


def export_file(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = _open(settings)
    try:
        found = archived.by_aid(db, args.id)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the archive from the station store: {exc}") from None
    finally:
        db.close()
    if found is None:
        raise LoaxaError(f"no archived file {args.id} (it may have been rotated out); see `loaxa archive list`")
    source = settings.archive_dir / found.name
    if not source.exists():
        raise LoaxaError(f"archived file {args.id} ({found.name}) is missing from {settings.archive_dir}")
    sha = sha256_file(source)
    if sha != found.sha256:
        raise LoaxaError(
            f"archived file {args.id} ({found.name}) is damaged: sha256 {sha}, the store has {found.sha256}"
        )
    out = Path(args.out)
    target = out / found.name if out.is_dir() else out
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise LoaxaError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(f"wrote {target}: {found.seconds:.1f} s, sha256 {sha}")
    return 0
