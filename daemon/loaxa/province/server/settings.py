"""Province server settings: a YAML file validated into frozen, documented types.

Same rules as the station's configuration (`loaxa.config`): every error at
once, each naming its key, a misspelt key answered with the nearest valid
name, relative paths resolved against the file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loaxa.config import SLUG, TlsSettings
from loaxa.config import masked as station_masked
from loaxa.errors import ConfigError
from loaxa.validation import describe_config_errors

CONFIG_ENV = "LOAXA_PROVINCE_CONFIG"
SECRET_KEYS = {"password", "url"}  # a database URL may carry a password


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProvinceSection(_Section):
    """Which province this server keeps: its slug and the topic prefix."""

    id: str = Field(pattern=SLUG)
    prefix: str = "loaxa/v1"
    timezone: str = "Asia/Ho_Chi_Minh"  # days of the reports


class BrokerSettings(_Section):
    """The server's own persistent MQTT session."""

    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: TlsSettings | None = None
    client_id: str = Field(default="loaxa-province-server", min_length=1, max_length=128)
    # Several instances: `$share/loaxa-province/` before the filters, one client id each (docs/province-server.md).
    shared_group: str | None = Field(default=None, pattern=SLUG)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=60)  # the broker queues for a stopped server this long
    receive_maximum: int = Field(default=1000, ge=1, le=65535)  # unacknowledged deliveries in flight to the server
    reconnect_max_s: float = Field(default=30.0, ge=1.0)
    # Ingest sessions on one shared subscription (client ids client_id, client_id-2, ...), each storing its own batches.
    sessions: int = Field(default=1, ge=1, le=16)


class DatabaseSettings(_Section):
    """SQLite under `data_dir` by default; any SQLAlchemy URL (PostgreSQL) for scale."""

    url: str | None = None  # e.g. postgresql+psycopg://loaxa@db/loaxa; default sqlite:///<data_dir>/province.db
    # SQLite only: `normal` survives a kill -9 of the server (the WAL is in the OS), `full` also a power cut.
    synchronous: str = Field(default="full", pattern=r"^(normal|full)$")
    batch_max: int = Field(default=500, ge=1, le=10_000)  # messages committed (then acknowledged) together

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("database.url must be sqlite:///FILE or postgresql+psycopg://USER@HOST/DB")
        return value


class StationsSettings(_Section):
    silent_after_s: float = Field(default=180.0, ge=10.0)  # no state for this long: "silent" (states come every 60 s)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8640, ge=0, le=65535)  # 0: any free port (tests)


class SigningSettings(_Section):
    key_file: Path | None = None  # the province's issuer key (`loaxa keys new`); unsigned bulletins without it


class ConsoleSettings(_Section):
    """The operators' web console, served beside the API by the same process."""

    enabled: bool = True
    language: str = Field(default="vi", pattern=r"^(vi|en)$")  # the pages' language until a user picks another
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)  # a login lasts this long
    # Session cookies are Secure when the request came over TLS (directly or `X-Forwarded-Proto: https`
    # from the reverse proxy); true forces it, false never sets it (a plain-HTTP test bench only).
    secure_cookies: bool | None = None
    login_attempts_per_minute: int = Field(default=5, ge=1, le=100)  # per user name and per client address
    media_url: str | None = None  # base URL stations fetch uploaded audio from; default http://<http host:port>/media
    upload_max_mb: int = Field(default=50, ge=1, le=1024)
    voices_dir: Path | None = None  # where the preview voice is installed; default the package's tts_models
    voice: str = Field(default="vi_VN-vais1000-medium", min_length=1)  # the audio preview; espeak-ng without it


class ProvinceServerSettings(_Section):
    """The whole province server configuration."""

    province: ProvinceSection
    broker: BrokerSettings = BrokerSettings()
    database: DatabaseSettings = DatabaseSettings()
    data_dir: Path = Path("/var/lib/loaxa-province")
    stations: StationsSettings = StationsSettings()
    http: HttpSettings = HttpSettings()
    signing: SigningSettings = SigningSettings()
    console: ConsoleSettings = ConsoleSettings()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'province.db'}"


def config_path(given: str | os.PathLike[str] | None) -> Path:
    if given:
        return Path(given)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    raise ConfigError(f"no configuration file: pass --config FILE or set {CONFIG_ENV}")


def load_settings(path: str | os.PathLike[str]) -> ProvinceServerSettings:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return parse_settings(raw, base=path.parent, source=str(path))


def parse_settings(raw: dict[str, Any], base: Path = Path("."), source: str = "config") -> ProvinceServerSettings:
    try:
        settings = ProvinceServerSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(describe_config_errors(exc, ProvinceServerSettings))) from None

    def rel(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p).resolve()

    return settings.model_copy(
        update={
            "data_dir": rel(settings.data_dir),
            "signing": settings.signing.model_copy(update={"key_file": rel(settings.signing.key_file)}),
            "console": settings.console.model_copy(update={"voices_dir": rel(settings.console.voices_dir)}),
        }
    )


def masked(settings: ProvinceServerSettings) -> dict[str, Any]:
    """The effective settings as plain data, passwords and the database URL replaced by ****."""
    return station_masked(settings, SECRET_KEYS)
