"""Helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import os

from loaxa.config import CONFIG_ENV, Settings, StationSettings, config_path, load_config


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help=f"configuration file (default: ${CONFIG_ENV})")


def settings_from(args: argparse.Namespace) -> Settings:
    return load_config(config_path(args.config))


def settings_or_defaults(args: argparse.Namespace) -> Settings:
    """The station's settings when a file is named, else built-in defaults (for tools)."""
    if args.config or os.environ.get(CONFIG_ENV):
        return settings_from(args)
    return Settings(station=StationSettings(province="local", commune="local", id="local"))
