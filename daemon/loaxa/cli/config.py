"""`loaxa config`: check a configuration file and print it as the daemon sees it."""

from __future__ import annotations

import argparse

import yaml

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.config import masked


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check the configuration and print it (secrets masked)")
    add_config_arg(p)
    p.set_defaults(func=show)


def show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    print(yaml.safe_dump(masked(settings), allow_unicode=True, sort_keys=False), end="")
    return 0
