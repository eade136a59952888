"""Helpers shared by the sub-commands."""

from __future__ import annotations

import argparse

from loaxa.config import CONFIG_ENV, Settings, StationSettings, config_path, find_config, load_config


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """`-c FILE` after the sub-command; `loaxa -c FILE COMMAND` works too."""
    parser.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help=f"configuration file (default: ${CONFIG_ENV}, else /etc/loaxa/loaxa.yaml, else the example in a checkout)",
    )


def config_arg(args: argparse.Namespace) -> str | None:
    return getattr(args, "config", None)


def settings_from(args: argparse.Namespace) -> Settings:
    return load_config(config_path(config_arg(args)))


def settings_or_defaults(args: argparse.Namespace) -> Settings:
    """The station's settings when a configuration is found, else built-in defaults (for tools)."""
    if find_config(config_arg(args)) is not None:
        return settings_from(args)
    return Settings(station=StationSettings(province="local", commune="local", id="local"))
