"""Station settings: a YAML file validated into frozen, documented types.

Every error in the file is reported at once, each naming its key; a
misspelt key gets the nearest valid name as a suggestion. The rest of the
daemon receives a `Settings` object and never sees raw YAML.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loaxa.errors import ConfigError
from loaxa.i18n import _
from loaxa.states import Priority
from loaxa.validation import describe_config_errors

SLUG = r"^[a-z0-9-]{1,40}$"
SLUG_WORDS = "use lower-case letters a-z, digits and '-' (at most 40)"
CONFIG_ENV = "LOAXA_CONFIG"
SYSTEM_CONFIG = Path("/etc/loaxa/loaxa.yaml")
# The folder the code runs from: a checkout, or /opt/loaxa on a station. Relative
# `tts.voices_dir` resolves against it, so one config works from any folder.
INSTALL_DIR = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = INSTALL_DIR / "config" / "loaxa.example.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StationSettings(_Section):
    """Who this station is: three slugs and its time zone."""

    province: str
    commune: str
    id: str
    timezone: str = "Asia/Ho_Chi_Minh"

    @field_validator("province", "commune", "id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not isinstance(value, str) or not re.match(SLUG, value):
            raise ValueError(_("{value} is not a slug: {rule}").format(value=repr(value), rule=_(SLUG_WORDS)))
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Ho_Chi_Minh)") from None
        return value

    @property
    def path(self) -> str:
        """`province/commune/station`, as events name the station."""
        return f"{self.province}/{self.commune}/{self.id}"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class TlsSettings(_Section):
    """TLS towards the broker; `ca_file` alone verifies the server."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip host-name checks; only for a broker reached by IP


class MqttSettings(_Section):
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: TlsSettings | None = None
    prefix: str = "loaxa/v1"
    groups: tuple[str, ...] = ()
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    reconnect_max_s: float = Field(default=60.0, ge=1.0)

    @field_validator("groups")
    @classmethod
    def _group_slugs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for group in value:
            if not re.match(SLUG, group):
                raise ValueError(f"group {group!r} is not a slug: {SLUG_WORDS}")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix_clean(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/") or any(c in value for c in "+#"):
            raise ValueError("prefix must be topic levels without leading/trailing '/' or wildcards")
        return value


class AudioSettings(_Section):
    """Where sound goes: `default`, a PortAudio device name, or `wav:DIR`."""

    output: str = "default"
    volume: float = Field(default=0.8, ge=0.0, le=1.0)
    sample_rate_hz: int = Field(default=22050, ge=8000, le=96000)
    latency_s: float = Field(default=0.03, gt=0.0, le=1.0)
    chime: bool = True
    lead_silence_s: float = Field(default=0.3, ge=0.0, le=5.0)
    retry_s: float = Field(default=5.0, gt=0.0)  # between attempts to open a missing device
    live_input: str | None = None  # `loaxa live`: a PortAudio input device, `default` or (part of) its name


class StorageSettings(_Section):
    dir: Path = Path("/var/lib/loaxa")
    audio_cache_mb: int = Field(default=1024, ge=0)  # recorded bulletins kept on disk, least recently used go first
    # What aired (plays), finished bulletins and the ids seen, kept for `loaxa log` and for answering
    # a redelivered command `duplicate`; pruned hourly. Open plays and active bulletins are never pruned.
    keep_days: float = Field(default=60.0, gt=0.0)
    keep_events: int = Field(default=10_000, ge=100)  # sent receipts kept; an unsent one is never pruned


class ArchiveSettings(_Section):
    """The on-air archive: what went to the amplifier, one compressed file per on-air session."""

    enabled: bool = False
    dir: Path | None = None  # default: <storage.dir>/archive
    codec: Literal["opus", "mp3"] = "opus"
    bitrate_kbps: int = Field(default=24, ge=8, le=128)  # mono speech; 24 kb/s Opus is clear speech
    max_mb: float = Field(default=2000.0, gt=0.0)  # the oldest files go first beyond this
    days: float = Field(default=90.0, gt=0.0)  # and files older than this
    min_free_mb: float = Field(default=100.0, ge=0.0)  # archiving stops below this much free space
    queue_s: float = Field(default=30.0, ge=1.0, le=600.0)  # audio waiting for the encoder; beyond it is dropped


class TtsSettings(_Section):
    """The voice: a Piper voice name or path, and the espeak-ng fallback."""

    voice: str = "vi_VN-vais1000-medium"
    fallback: str = "espeak:vi"
    voices_dir: Path = Path("tts_models")
    threads: int = Field(default=0, ge=0, le=64)  # 0: one per core
    rate: float = Field(default=1.0, ge=0.5, le=2.0)
    sentence_silence_s: float = Field(default=0.25, ge=0.0, le=5.0)
    deadline_s: float = Field(default=20.0, gt=0.0)  # one sentence; past it the fallback speaks
    cache_max_mb: int = Field(default=512, ge=0)


class TextSettings(_Section):
    """The Vietnamese front-end: dialect and the editable lexicon."""

    dialect: Literal["north", "south"] = "north"
    lexicon: Path | None = None  # extra entries on top of the built-in lexicon


class QuietHours(_Section):
    start: time = time(22, 0)
    end: time = time(5, 0)


class BroadcastSettings(_Section):
    quiet_hours: QuietHours | None = QuietHours()
    grace_s: float = Field(default=600.0, ge=0.0)
    max_queue: int = Field(default=200, ge=1)


class AmplifierSettings(_Section):
    backend: Literal["none", "gpio", "command"] = "none"
    gpio_chip: str = "gpiochip0"
    gpio_pin: int | None = Field(default=None, ge=0)
    gpio_active_low: bool = False  # many relay boards switch on a low level
    on_command: tuple[str, ...] = ()
    off_command: tuple[str, ...] = ()
    command_timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)  # per on/off command
    warmup_s: float = Field(default=1.5, ge=0.0, le=30.0)
    hold_s: float = Field(default=30.0, ge=0.0)


class ClockSettings(_Section):
    require_sync: bool = True


class Issuer(_Section):
    kid: str = Field(min_length=1, max_length=64)
    public_key: str  # raw 32-byte Ed25519 key, base64


class SecuritySettings(_Section):
    require_signature: bool = False
    replay_window_s: float = Field(default=3600.0, gt=0.0)
    issuers: tuple[Issuer, ...] = ()
    max_commands_per_min: int = Field(default=60, ge=1)  # per issuer
    max_download_mb: float = Field(default=50.0, gt=0.0)
    # Recordings and streams come only from public addresses unless this is true: a URL (or a redirect)
    # to a loopback, private, link-local or reserved address would let whoever can send a bulletin
    # probe the commune's own network. Checked on the address of every connection the station makes.
    allow_private_urls: bool = False
    # Host names fetched from even when they resolve to such an address: the province's own media server.
    private_url_hosts: tuple[str, ...] = ()

    @field_validator("private_url_hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if ":" in host and _is_ip(host):  # an IPv6 address, written as in a URL but without brackets
                continue
            if not host or not host.isascii() or any(c in host for c in "/:@[] ") or host != host.strip("."):
                raise ValueError(f"{host!r} is not a host name (write the name alone, without scheme or port)")
        return tuple(host.lower() for host in value)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class ApprovalSettings(_Section):
    """Commune approval (Thông tư 39): which bulletins wait for the commune's answer, and who may give it."""

    required_for: tuple[Priority, ...] = ()  # priorities that wait; `emergency` never does
    approvers: tuple[str, ...] = ()  # key ids (of security.issuers) whose signed approve/decline count
    # Per issuer key id, the priorities that wait for its bulletins, instead of `required_for`
    # (e.g. the commune's own key: [] so that its bulletins never wait).
    issuers: dict[str, tuple[Priority, ...]] = {}
    max_wait_h: float = Field(default=24.0, gt=0.0)  # unanswered this long (or past its `expires`): expired

    @field_validator("required_for")
    @classmethod
    def _emergency_never_waits(cls, value: tuple[Priority, ...]) -> tuple[Priority, ...]:
        return _without_emergency(value)

    @field_validator("issuers")
    @classmethod
    def _emergency_never_waits_by_issuer(
        cls, value: dict[str, tuple[Priority, ...]]
    ) -> dict[str, tuple[Priority, ...]]:
        for kid, priorities in value.items():
            try:
                _without_emergency(priorities)
            except ValueError as exc:
                raise ValueError(f"{kid}: {exc}") from None
        return value


def _without_emergency(priorities: tuple[Priority, ...]) -> tuple[Priority, ...]:
    if Priority.EMERGENCY in priorities:
        raise ValueError("emergency bulletins never wait for approval; remove 'emergency'")
    return priorities


class ControlSettings(_Section):
    socket: Path | None = None  # default: <storage.dir>/control.sock


class ServiceSettings(_Section):
    """How the service manager watches the daemon."""

    # A loop silent this long is stalled and the systemd watchdog ping is withheld.
    # It must outlast a voice's deadline (a sentence may take that long); slow boards raise it.
    watchdog_stall_s: float = Field(default=60.0, ge=5.0, le=3600.0)


class Settings(_Section):
    """The whole station configuration."""

    station: StationSettings
    mqtt: MqttSettings = MqttSettings()
    audio: AudioSettings = AudioSettings()
    storage: StorageSettings = StorageSettings()
    archive: ArchiveSettings = ArchiveSettings()
    tts: TtsSettings = TtsSettings()
    text: TextSettings = TextSettings()
    broadcast: BroadcastSettings = BroadcastSettings()
    amplifier: AmplifierSettings = AmplifierSettings()
    clock: ClockSettings = ClockSettings()
    security: SecuritySettings = SecuritySettings()
    approval: ApprovalSettings = ApprovalSettings()
    control: ControlSettings = ControlSettings()
    service: ServiceSettings = ServiceSettings()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _backend_needs_wiring(self) -> Settings:
        amp = self.amplifier
        if amp.backend == "gpio" and amp.gpio_pin is None:
            raise ValueError("amplifier.backend is gpio but amplifier.gpio_pin is not set")
        if amp.backend == "command" and not (amp.on_command and amp.off_command):
            raise ValueError("amplifier.backend is command but on_command/off_command are empty")
        return self

    @model_validator(mode="after")
    def _signature_needs_keys(self) -> Settings:
        if self.security.require_signature and not self.security.issuers:
            raise ValueError("security.require_signature is true but security.issuers is empty")
        return self

    @model_validator(mode="after")
    def _approvers_have_keys(self) -> Settings:
        known = {issuer.kid for issuer in self.security.issuers}
        unknown = [kid for kid in self.approval.approvers if kid not in known]
        if unknown:
            raise ValueError(
                f"approval.approvers: {', '.join(map(repr, unknown))} not among security.issuers "
                "(an approval must be signed with a known key)"
            )
        return self

    @model_validator(mode="after")
    def _seen_outlasts_redelivery(self) -> Settings:
        if self.storage.keep_days * 86400 < self.mqtt.session_expiry_s:
            raise ValueError(
                f"storage.keep_days ({self.storage.keep_days:g}) is shorter than mqtt.session_expiry_s "
                f"({self.mqtt.session_expiry_s} s): a command the broker redelivers would play twice"
            )
        return self

    @model_validator(mode="after")
    def _stall_outlasts_the_voice(self) -> Settings:
        if self.service.watchdog_stall_s <= self.tts.deadline_s:
            raise ValueError(
                f"service.watchdog_stall_s ({self.service.watchdog_stall_s:g}) must be longer than "
                f"tts.deadline_s ({self.tts.deadline_s:g}): a sentence may take that long"
            )
        return self

    @property
    def control_socket(self) -> Path:
        return self.control.socket or self.storage.dir / "control.sock"

    @property
    def archive_dir(self) -> Path:
        return self.archive.dir or self.storage.dir / "archive"


SECRET_KEYS = {"password"}


def config_path(given: str | os.PathLike[str] | None) -> Path:
    """The configuration every command uses, found the way `loaxa run` finds it.

    The file named on the command line, else `$LOAXA_CONFIG`, else
    /etc/loaxa/loaxa.yaml (an installed station), else the example beside
    the code (a checkout).
    """
    found = find_config(given)
    if found is None:
        raise ConfigError(
            _("no configuration file: pass --config FILE, set {env}, or create {path}").format(
                env=CONFIG_ENV, path=SYSTEM_CONFIG
            )
        )
    return found


def find_config(given: str | os.PathLike[str] | None) -> Path | None:
    """`config_path`, or None when there is none anywhere."""
    if given:
        return Path(given)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    for candidate in (SYSTEM_CONFIG, EXAMPLE_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a YAML file; relative paths resolve against its folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(_("{path}: no such configuration file").format(path=path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(_("{path}: cannot read: {reason}").format(path=path, reason=exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(_("{path}: not valid YAML: {reason}").format(path=path, reason=exc)) from None
    if not isinstance(raw, dict):
        raise ConfigError(_("{path}: expected a mapping of sections at the top level").format(path=path))
    return parse_config(raw, base=path.parent, source=str(path))


def parse_config(raw: dict[str, Any], base: Path = Path("."), source: str = "config") -> Settings:
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(describe_config_errors(exc, Settings))) from None
    return _resolve_paths(settings, base)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative paths: against the config file's folder; voices against the code's folder.

    The voices live with the code (`tts_models/` beside it), wherever the
    configuration is copied to (/etc/loaxa on a station).
    """

    def rel(p: Path | None, against: Path = base) -> Path | None:
        return p if p is None or p.is_absolute() else (against / p).resolve()

    tls = settings.mqtt.tls
    if tls is not None:
        tls = tls.model_copy(update={k: rel(getattr(tls, k)) for k in ("ca_file", "cert_file", "key_file")})
    return settings.model_copy(
        update={
            "mqtt": settings.mqtt.model_copy(update={"tls": tls}),
            "storage": settings.storage.model_copy(update={"dir": rel(settings.storage.dir)}),
            "tts": settings.tts.model_copy(update={"voices_dir": rel(settings.tts.voices_dir, INSTALL_DIR)}),
            "text": settings.text.model_copy(update={"lexicon": rel(settings.text.lexicon)}),
            "control": settings.control.model_copy(update={"socket": rel(settings.control.socket)}),
            "archive": settings.archive.model_copy(update={"dir": rel(settings.archive.dir)}),
        }
    )


def masked(settings: BaseModel, secrets: frozenset[str] | set[str] = SECRET_KEYS) -> dict[str, Any]:
    """The effective configuration as plain data, the values of `secrets` keys replaced by ****."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("****" if k in secrets and v else walk(v)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    return walk(settings.model_dump(mode="json"))
