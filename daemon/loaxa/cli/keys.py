"""`loaxa keys`: make and show issuer signing keys.

The private key file stays with the issuer (province server or operator
laptop); stations only get the public key, through the printed YAML snippet.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from loaxa.security import check_kid, default_kid, load_private_key, public_key_b64, save_private_key

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="make and show Ed25519 keys for signing commands")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    gen = sub.add_parser("generate", help="write a new private key file and print the station config snippet")
    gen.add_argument(
        "--out",
        metavar="FILE",
        help="private key file to write, mode 0600 (default: ~/.config/loaxa/keys/KID.key, a folder only you can read)",
    )
    gen.add_argument("--kid", help="key id the stations will know it by (default: derived from the key)")
    gen.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    gen.set_defaults(func=generate)

    show = sub.add_parser("show", help="print the key id and public key of a key file")
    show.add_argument("file", metavar="FILE")
    show.set_defaults(func=show_key)


def key_folder() -> Path:
    """Where keys go by default: private to the user, never the working directory (a repository)."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "loaxa" / "keys"


def station_snippet(kid: str, public_key: str) -> str:
    """YAML for the station config; the kid is quoted so "1" or "no" stay strings."""
    return (
        "security:\n"
        "  require_signature: true\n"
        "  issuers:\n"
        f"    - kid: {json.dumps(kid)}\n"
        f"      public_key: {public_key}\n"
    )


def generate(args: argparse.Namespace) -> int:
    private_key = Ed25519PrivateKey.generate()
    kid = check_kid(args.kid) if args.kid else default_kid(private_key)
    out = Path(args.out) if args.out else key_folder() / f"{kid}.key"
    if not args.out:
        out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = save_private_key(out, private_key, kid, force=args.force)
    print(f"# private key: {path} (sign with --key {path})")
    log.info("wrote private key %s (mode 0600); keep it off the stations", path)
    print("# Add to each station's configuration (merge with an existing security: section):")
    print(station_snippet(kid, public_key_b64(private_key)), end="")
    return 0


def show_key(args: argparse.Namespace) -> int:
    private_key, kid = load_private_key(args.file)
    print(f"kid: {json.dumps(kid)}")
    print(f"public_key: {public_key_b64(private_key)}")
    return 0
