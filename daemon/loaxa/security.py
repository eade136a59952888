"""Signed commands: canonical JSON, Ed25519 signatures, issuer keys, rate limit.

A command is signed over its canonical JSON without `sig`: keys sorted at
every level, no insignificant white space, UTF-8, non-ASCII characters not
escaped (`loaxa.jsonwire.canonical`). `kid` names the issuer key and is
itself signed; `sig` is the standard base64 of the 64-byte Ed25519 signature.

The station verifies every signed command, whatever `require_signature`
says: a bad signature is never "good enough". Replay of an (id, rev) is the
store's business; here only the `issued` time is held to the window, and
(`check_target`) the signed `to` to the topic the command came on, so that a
signature made for one station is no good anywhere else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import stat
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from loaxa.config import SecuritySettings
from loaxa.errors import CommandError, ConfigError
from loaxa.jsonwire import canonical
from loaxa.protocol import ID_PATTERN
from loaxa.timing import parse_instant

log = logging.getLogger(__name__)

KEY_FILE_FORMAT = "loaxa-ed25519-v1"
KID_RE = re.compile(ID_PATTERN)  # key ids follow the rule of command ids
SIGNATURE_LEN = 64
PUBLIC_KEY_LEN = 32


# --- canonical form and signing -------------------------------------------


def canonical_json(command: dict[str, Any]) -> bytes:
    """The bytes that are signed: the command without `sig`, canonical JSON."""
    if not isinstance(command, dict):
        raise CommandError(f"a command must be a JSON object, not {type(command).__name__}")
    body = {k: v for k, v in command.items() if k != "sig"}
    try:
        return canonical(body)
    except (TypeError, ValueError) as exc:  # non-JSON value, NaN, non-string key mix
        raise CommandError(f"command cannot be written as canonical JSON: {exc}") from exc
    except UnicodeEncodeError as exc:  # a lone surrogate in a string
        raise CommandError("command contains text that is not valid Unicode") from exc


def sign(
    command: dict[str, Any],
    private_key: Ed25519PrivateKey,
    kid: str,
    *,
    issued: datetime | None = None,
) -> dict[str, Any]:
    """A copy of `command` with `kid` and `sig` (and `issued`, when given)."""
    signed = {k: v for k, v in command.items() if k != "sig"}
    signed["kid"] = kid
    if issued is not None:
        if issued.tzinfo is None:
            raise ValueError("issued must carry a UTC offset")
        signed["issued"] = issued.isoformat(timespec="seconds")
    signature = private_key.sign(canonical_json(signed))
    signed["sig"] = base64.b64encode(signature).decode("ascii")
    return signed


# --- key files --------------------------------------------------------------
#
# A key file is a small YAML document, mode 0600:
#
#   # loaxa issuer signing key: keep it secret, never copy it to a station
#   format: loaxa-ed25519-v1
#   kid: province-hn-2025
#   private_key: <base64 of the raw 32-byte Ed25519 private key (seed)>
#   public_key: <base64 of the raw 32-byte public key, for reference only>
#
# The public key line is informational; the loader derives it again and
# refuses a file where the two disagree (a hand-edited or mixed-up file).


class SigningKey(NamedTuple):
    private_key: Ed25519PrivateKey
    kid: str


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    """The raw 32-byte public key in base64, as `security.issuers` wants it."""
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def default_kid(private_key: Ed25519PrivateKey) -> str:
    """A stable key id derived from the public key: `ed25519-` + 8 hex digits."""
    digest = hashlib.sha256(base64.b64decode(public_key_b64(private_key))).hexdigest()
    return f"ed25519-{digest[:8]}"


def check_kid(kid: str) -> str:
    if not KID_RE.match(kid):
        raise ConfigError(f"key id {kid!r} is not 1-64 of A-Z a-z 0-9 . _ : -")
    return kid


def save_private_key(
    path: str | os.PathLike[str], private_key: Ed25519PrivateKey, kid: str, *, force: bool = False
) -> Path:
    """Write the key file with mode 0600; refuse to overwrite unless `force`."""
    path = Path(path)
    check_kid(kid)
    seed = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    text = (
        "# loaxa issuer signing key: keep it secret, never copy it to a station\n"
        f"format: {KEY_FILE_FORMAT}\n"
        f"kid: {json.dumps(kid)}\n"
        f"private_key: {base64.b64encode(seed).decode('ascii')}\n"
        f"public_key: {public_key_b64(private_key)}\n"
    )
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; use --force to overwrite it")
    # Write a fresh 0600 file beside the target and rename it over, so the
    # secret is never readable by others, not even for a moment.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # in case the umask was stricter than needed, or a filesystem ignored mode
        if not force and path.exists():
            raise ConfigError(f"{path} already exists; use --force to overwrite it")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write key file {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_private_key(path: str | os.PathLike[str]) -> SigningKey:
    """Read a key file written by `save_private_key`; ConfigError says what is wrong."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by other users (mode %o); chmod 600 it", path, mode & 0o777)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"key file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != KEY_FILE_FORMAT:
        raise ConfigError(f"{path} is not a loaxa key file (expected 'format: {KEY_FILE_FORMAT}')")
    kid = data.get("kid")
    if not isinstance(kid, str):
        raise ConfigError(f"key file {path}: 'kid' is missing or not a string")
    check_kid(kid)
    try:
        seed = _b64_exact(data.get("private_key"), PUBLIC_KEY_LEN)
        private_key = Ed25519PrivateKey.from_private_bytes(seed)
    except ValueError as exc:
        raise ConfigError(f"key file {path}: private_key is not a base64 raw 32-byte Ed25519 key ({exc})") from exc
    stated = data.get("public_key")
    if stated is not None and stated != public_key_b64(private_key):
        raise ConfigError(f"key file {path}: public_key does not match private_key (file edited or mixed up)")
    return SigningKey(private_key, kid)


def _b64_exact(value: object, length: int) -> bytes:
    """Strict standard base64 of exactly `length` bytes, else ValueError."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"bad base64: {exc}") from exc
    if len(raw) != length:
        raise ValueError(f"{len(raw)} bytes, expected {length}")
    return raw


# --- verification -------------------------------------------------------------


def parse_issued(value: object) -> datetime:
    """An ISO 8601 time with an offset ("Z" accepted), else CommandError."""
    if not isinstance(value, str):
        raise CommandError("signed command has no 'issued' time (needed to refuse replays)")
    return parse_instant(value, "issued")


def _describe(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


class Verifier:
    """Checks `kid`/`sig`/`issued` of commands against the configured issuers."""

    def __init__(self, settings: SecuritySettings) -> None:
        self.require_signature = settings.require_signature
        self.replay_window = timedelta(seconds=settings.replay_window_s)
        self._keys: dict[str, Ed25519PublicKey] = {}
        for issuer in settings.issuers:
            if issuer.kid in self._keys:
                raise ConfigError(f"security.issuers: key id {issuer.kid!r} is listed twice")
            try:
                raw = _b64_exact(issuer.public_key, PUBLIC_KEY_LEN)
                self._keys[issuer.kid] = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"security.issuers: public_key of {issuer.kid!r} is not a base64 raw 32-byte Ed25519 key ({exc})"
                ) from exc

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def check(self, command: dict[str, Any], now: datetime) -> str | None:
        """The issuer's kid of a valid signed command, None for an allowed unsigned one.

        Raises CommandError with a reason an operator understands otherwise.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if not isinstance(command, dict):
            raise CommandError(f"a command must be a JSON object, not {type(command).__name__}")
        kid, sig = command.get("kid"), command.get("sig")
        if kid is None and sig is None:
            if self.require_signature:
                raise CommandError("unsigned command: this station accepts only signed commands (kid and sig)")
            return None
        if kid is None or sig is None:
            missing = "sig" if sig is None else "kid"
            raise CommandError(f"incomplete signature: '{missing}' is missing")
        if not isinstance(kid, str) or not isinstance(sig, str):
            raise CommandError("malformed signature: 'kid' and 'sig' must be strings")
        key = self._keys.get(kid)
        if key is None:
            raise CommandError(f"unknown key id {kid[:64]!r}: not among this station's security.issuers")
        try:
            signature = _b64_exact(sig, SIGNATURE_LEN)
        except ValueError as exc:
            raise CommandError(f"malformed signature from {kid!r}: {exc}") from None
        try:
            key.verify(signature, canonical_json(command))
        except InvalidSignature:
            raise CommandError(
                f"bad signature for key {kid!r}: the command was altered or signed with another key"
            ) from None
        # Only after the signature holds is `issued` worth believing.
        issued = parse_issued(command.get("issued"))
        try:
            delta = issued - now
        except OverflowError:  # year 1 with a positive offset, and the like
            raise CommandError(f"'issued' is out of range: {command['issued']!r}") from None
        if abs(delta) > self.replay_window:
            when = "in the future" if delta > timedelta(0) else "old"
            raise CommandError(
                f"'issued' {command['issued']} is {_describe(delta)} {when}; allowed is "
                f"±{self.replay_window.total_seconds():g} s (a replay, or a clock is wrong)"
            )
        return kid


# --- the target ----------------------------------------------------------------


def check_target(to: str | None, arrived: str | None, *, signed: bool) -> None:
    """A command's `to` against the target of the topic it `arrived` on (`loaxa.topics.target_of`).

    `to` is what the issuer meant (and, signed, what it signed); the topic is
    where the command was sent. A signed command must say `to`, or its
    signature, made for one station, would be good on the province topic and
    on every other station's. An unsigned one may leave it out.
    """
    if to is None:
        if signed:
            raise CommandError(
                "signed command has no 'to': it must name its target (P, P/C, P/C/S or P/group/G) "
                "so that it cannot be replayed to other stations"
            )
        return
    if arrived is None:
        raise CommandError(f"'to' is {to!r} but the command did not come on a command topic")
    if to != arrived:
        raise CommandError(f"'to' is {to!r} but the command came on the topic of {arrived!r} (a replay elsewhere?)")


# --- rate limit -----------------------------------------------------------------


class RateLimiter:
    """A token bucket per issuer: bursts up to `max_per_min`, then that rate.

    `now` is a monotonic time in seconds. Thread-safe.
    """

    MAX_TRACKED = 1024  # issuers are few; this bounds memory if names are not

    def __init__(self, max_per_min: int) -> None:
        if max_per_min < 1:
            raise ValueError("max_per_min must be at least 1")
        self.capacity = float(max_per_min)
        self.refill_per_s = max_per_min / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # issuer -> (tokens, at)
        self._lock = threading.Lock()

    def allow(self, issuer: str, now: float) -> bool:
        with self._lock:
            tokens, at = self._buckets.get(issuer, (self.capacity, now))
            elapsed = max(0.0, now - at)  # a clock going back must not mint tokens
            tokens = min(self.capacity, tokens + elapsed * self.refill_per_s)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[issuer] = (tokens, max(now, at))
            if len(self._buckets) > self.MAX_TRACKED:
                self._forget_full(now)
            return allowed

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they behave like new ones."""
        for name, (tokens, at) in list(self._buckets.items()):
            if tokens + max(0.0, now - at) * self.refill_per_s >= self.capacity:
                del self._buckets[name]
