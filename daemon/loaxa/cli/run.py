"""`loaxa run`: the station daemon."""

from __future__ import annotations

import argparse

from loaxa.cli._common import add_config_arg, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the station daemon",
        description="Run the station: connect to the province broker, air what arrives, report receipts. "
        "systemd runs this (systemd/loaxa.service); stop it with SIGTERM or Ctrl-C.",
    )
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from loaxa import i18n
    from loaxa.daemon import Station

    i18n.use("en")  # the journal and the receipts the province reads stay in one language

    # Nothing the daemon writes (store, speech and audio caches, copies of played files) is for
    # other users: group-readable at most, as the socket is.
    os.umask(0o027)
    settings = settings_from(args)
    return Station(settings).run()
