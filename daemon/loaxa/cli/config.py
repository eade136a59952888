"""`loaxa config`: check a configuration file and print it as the daemon sees it."""

from __future__ import annotations

import argparse
import os

import yaml

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.config import Settings, masked
from loaxa.errors import ConfigError, LoaxaError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="check the configuration and print it (secrets masked)",
        description="Check the configuration as `loaxa run` would (every error at once, and the files it "
        "names) and print it as the daemon sees it, passwords masked.",
    )
    add_config_arg(p)
    p.set_defaults(func=show)


def show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    problems = file_problems(settings)
    if problems:
        raise ConfigError("; ".join(problems))
    print(yaml.safe_dump(masked(settings), allow_unicode=True, sort_keys=False), end="")
    return 0


def file_problems(settings: Settings) -> list[str]:
    """What `loaxa run` would refuse at start in the files the configuration names."""
    from loaxa.speech.normalize import Lexicon

    problems = []
    try:
        Lexicon.load(settings.text.lexicon)
    except LoaxaError as exc:
        problems.append(f"text.lexicon: {exc}")
    tls = settings.mqtt.tls
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, key) if tls else None
        if path is not None and not os.access(path, os.R_OK):
            problems.append(f"mqtt.tls.{key}: {path} {'cannot be read' if path.exists() else 'does not exist'}")
    return problems
