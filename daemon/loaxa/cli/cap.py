"""`loaxa cap`: CAP 1.2 alerts to bulletins, once or as a bridge that keeps polling.

loaxa cap alert.xml                              # show the command it becomes
loaxa cap https://…/alert.xml --province hn      # publish it, follow the receipts
loaxa cap --bridge https://…/feed.atom --province hn --interval 60 --key issuer.key
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from loaxa.errors import LoaxaError
from loaxa.province.cap import CapError, CapNotLive, cap_to_commands, parse_cap
from loaxa.province.capfeed import Document, documents
from loaxa.province.send import add_send_args, add_target_args, deliver, finish, targets_from
from loaxa.timing import parse_instant

log = logging.getLogger(__name__)

NOTHING = 3  # exit code: valid alert(s), nothing to air (test, exercise, expired, system)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cap",
        help="turn CAP 1.2 alerts into bulletins (show, publish, or bridge a feed)",
        description="Read CAP 1.2 alerts (file, folder, URL, or Atom/RSS feed of alerts) and turn the "
        "Vietnamese <info> block into a bulletin. Without a target, print the commands. "
        "Test and Exercise alerts are never aired.",
    )
    p.add_argument("source", nargs="*", metavar="FILE|URL", help="CAP documents, folders of them, or feeds")
    p.add_argument("--bridge", action="append", default=[], metavar="URL", help="poll this source (repeatable)")
    p.add_argument("--interval", type=float, default=60.0, help="bridge: seconds between polls (default 60)")
    p.add_argument("--once", action="store_true", help="bridge: one poll, then exit")
    p.add_argument("--language", default="vi", help="language of the <info> block to read (default vi)")
    p.add_argument("--now", help=argparse.SUPPRESS)  # evaluate expiry as of this time (replays, tests)
    add_target_args(p, required=False)
    add_send_args(p, auto="finished; none with --bridge")
    p.set_defaults(func=cap)


def cap(args: argparse.Namespace) -> int:
    targets = targets_from(args, required=False)
    if args.bridge:
        if not targets:
            raise LoaxaError("--bridge needs a target (--province, --commune, --group or --station)")
        if args.wait == "auto":
            args.wait = "none"  # a bridge must not stall on one slow station
        return Bridge(args, targets).run()
    if not args.source:
        raise LoaxaError("give a CAP file or URL (or --bridge URL)")
    worst = 0
    aired = 0
    for source in args.source:
        try:
            docs = documents(source)
        except CapError as exc:
            log.error("%s", exc)
            worst = 1
            continue
        for doc in docs:
            try:
                commands = commands_of(doc, args)
            except CapError as exc:
                log.error("%s: %s", doc.source, exc)
                worst = 1
                continue
            for command in commands:
                if targets:
                    code = deliver(args, targets, finish(command, args.key))
                    worst = max(worst, code)
                else:
                    print(json.dumps(command, ensure_ascii=False, indent=1))
                aired += 1
    return worst if aired or worst else NOTHING


def commands_of(doc: Document, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The commands of one document; a reason is printed when there are none."""
    now = parse_instant(args.now, "--now") if args.now else datetime.now(UTC)
    try:
        alert = parse_cap(doc.data)
        commands = cap_to_commands(alert, now, language=args.language)
    except CapNotLive as exc:
        print(f"{doc.source}: not aired: {exc}", file=sys.stderr)
        return []
    if not commands:
        print(f"{doc.source}: nothing to air ({alert.status} {alert.msg_type})", file=sys.stderr)
    for command in commands:
        print(
            f"{doc.source}: {alert.msg_type} {alert.identifier} → {command['type']} {command['id']}"
            f"{' (' + command['priority'] + ')' if 'priority' in command else ''}",
            file=sys.stderr,
        )
    return commands


class Bridge:
    """Polls sources and publishes each new alert once; survives any one bad document."""

    def __init__(self, args: argparse.Namespace, targets: list) -> None:
        self.args = args
        self.targets = targets
        self.seen_docs: set[str] = set()  # digests of documents already handled
        self.sent: set[tuple[str, str, int]] = set()  # (type, id, rev) published
        self.stopping = threading.Event()

    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
        log.info(
            "CAP bridge: %s → %s every %g s",
            ", ".join(self.args.bridge),
            ", ".join(map(str, self.targets)),
            self.args.interval,
        )
        failures = 0
        while True:
            failures = self.poll()
            if self.args.once or self.stopping.wait(self.args.interval):
                break
        return 1 if failures else 0

    def poll(self) -> int:
        failures = 0
        for source in self.args.bridge:
            try:
                docs = documents(source)
            except CapError as exc:
                log.warning("%s", exc)
                failures += 1
                continue
            for doc in docs:
                failures += self._handle(doc)
        return failures

    def _handle(self, doc: Document) -> int:
        digest = hashlib.sha256(doc.data).hexdigest()
        if digest in self.seen_docs:
            return 0
        try:
            commands = commands_of(doc, self.args)
        except CapError as exc:
            log.warning("%s: %s", doc.source, exc)
            self.seen_docs.add(digest)  # the same broken bytes stay broken
            return 1
        for command in commands:
            key = (command["type"], command["id"], int(command.get("rev", 0)))
            if key in self.sent:
                continue
            try:
                deliver(self.args, self.targets, finish(command, self.args.key))
            except LoaxaError as exc:
                log.error("could not publish %s from %s: %s; will retry", command["id"], doc.source, exc)
                return 1  # not marked seen: the next poll tries again
            self.sent.add(key)
        self.seen_docs.add(digest)
        return 0
