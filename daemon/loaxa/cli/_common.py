"""Helpers shared by the sub-commands."""

from __future__ import annotations

import argparse

from loaxa.config import Settings, config_path, load_config


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="configuration file (default: $LOAXA_CONFIG)")


def settings_from(args: argparse.Namespace) -> Settings:
    return load_config(config_path(args.config))
