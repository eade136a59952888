"""The province database: what the stations said, and what the province sent.

Times are UTC epoch seconds (`*_at`, floats) so SQLite and PostgreSQL order
and subtract them alike; the station's own `at` is kept as it sent it.
`migrations/` creates these tables; a change here needs a new revision there.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

stations = Table(
    "stations",
    metadata,
    Column("station", String(130), primary_key=True),  # province/commune/station
    Column("commune", String(40), nullable=False),
    Column("first_seen_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),  # last state or event that arrived
    Column("state_at", Float),  # when the last state arrived
    Column("online", Boolean),
    Column("online_since", Float),  # since when `online` has its present value
    Column("version", String(40)),
    Column("voice", Text),  # engine:name
    Column("voice_fallback", Boolean),
    Column("clock_synced", Boolean),
    Column("audio_error", Text),
    Column("amplifier_fault", Text),
    Column("storage_fault", Text),
    Column("groups", Text),  # JSON list, or null when the station does not say
    Column("on_air", String(64)),
    Column("queue", Integer),
    Column("state", Text),  # the last state object, JSON
    Column("max_seq", Integer),  # highest event seq stored
)

station_changes = Table(
    "station_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station", String(130), nullable=False),
    Column("at", Float, nullable=False),
    Column("change", Text, nullable=False),  # JSON: the fields that make a state new, as they became
    Index("station_changes_station", "station", "at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station", String(130), nullable=False),
    Column("seq", Integer),  # the station's outbox number; null from a station that sends none
    Column("bulletin_id", String(64)),
    Column("rev", Integer),
    Column("event", String(32), nullable=False),
    Column("at", String(40)),  # as the station wrote it
    Column("at_epoch", Float),  # the same instant, for ordering and reports
    Column("occurrence", String(40)),
    Column("detail", Text),
    Column("payload", Text, nullable=False),
    Column("stored_at", Float, nullable=False),
    UniqueConstraint("station", "seq", name="events_station_seq"),
    Index("events_bulletin", "bulletin_id", "station"),
    Index("events_at", "at_epoch"),
)

gaps = Table(
    "gaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station", String(130), nullable=False),
    Column("first_seq", Integer, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("noticed_at", Float, nullable=False),
    Index("gaps_station", "station", "first_seq"),
)

bulletins = Table(
    "bulletins",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bulletin_id", String(64), nullable=False),
    Column("rev", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # text, audio, stream, parts
    Column("priority", String(16), nullable=False),
    Column("targets", Text, nullable=False),  # JSON list of "kind p/..." as sent
    Column("sender", String(120), nullable=False),  # operator name or API token name
    Column("issuer", String(64)),  # the kid it was signed with; null when unsigned
    Column("command", Text, nullable=False),  # JSON, exactly as published
    Column("sent_at", Float, nullable=False),
    Column("cancelled_at", Float),
    Column("cancelled_by", String(120)),
    UniqueConstraint("bulletin_id", "rev", name="bulletins_id_rev"),
)

bulletin_stations = Table(
    "bulletin_stations",
    metadata,
    Column("bulletin", Integer, ForeignKey("bulletins.id"), primary_key=True),
    Column("station", String(130), primary_key=True),
    Column("expected", Boolean, nullable=False),  # known and addressed at send time
    Column("status", String(32), nullable=False),  # last receipt, or no_answer
    Column("detail", Text),
    Column("received_at", Float),  # station clock (at_epoch) of each receipt
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("updated_at", Float),  # when the server stored the last receipt
    Index("bulletin_stations_status", "bulletin", "status"),
    Index("bulletin_stations_updated", "bulletin", "updated_at"),  # the watch page's live stream
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("scopes", String(64), nullable=False),  # "read" or "read,send"
    Column("digest", String(64), nullable=False, unique=True),  # sha256 of the token; the token itself is never kept
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("token", String(120)),  # the token's name; null when none or unknown
    Column("user", String(64)),  # the console user; null for the API
    Column("method", String(8), nullable=False),
    Column("path", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("client", String(64)),
    Column("detail", Text),
)

# -- the web console (migration 0002) ---------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),  # lower case: logins ignore case
    Column("role", String(16), nullable=False),  # viewer, editor, approver, admin
    Column("password_hash", Text, nullable=False),  # argon2
    Column("language", String(4)),  # vi or en; null: console.language
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float),
    Column("last_login_at", Float),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie's token; the token itself is never kept
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("client", String(64)),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("name", String(64)),  # lower case, as typed
    Column("client", String(64)),
    Index("login_failures_at", "at"),
)

drafts = Table(
    "drafts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(200), nullable=False),
    Column("fields", Text, nullable=False),  # JSON: the compose form as saved
    Column("command", Text),  # JSON: the bulletin command it will send
    Column("targets", Text, nullable=False),  # JSON list: P, P/C, P/C/S, P/group/G
    Column("status", String(16), nullable=False),  # draft, submitted, returned, sent, withdrawn
    Column("editor", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("submitted_at", Float),
    Column("approver", String(64)),
    Column("approved_at", Float),
    Column("comment", Text),  # the approver's, when returning it
    Column("bulletin_id", String(64)),  # once sent
)

station_meta = Table(
    "station_meta",
    metadata,
    Column("station", String(130), primary_key=True),  # P/C/S as in `stations`
    Column("name", Text),
    Column("commune_name", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("note", Text),
    Column("updated_at", Float, nullable=False),
)

media = Table(
    "media",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("filename", Text, nullable=False),
    Column("mime", String(64), nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("duration_s", Float),
    Column("uploaded_by", String(64), nullable=False),
    Column("uploaded_at", Float, nullable=False),
)
