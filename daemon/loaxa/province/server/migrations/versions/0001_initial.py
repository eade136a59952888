"""The first schema: stations, their changes, events, gaps, bulletins, tokens, audit.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("station", sa.String(130), primary_key=True),
        sa.Column("commune", sa.String(40), nullable=False),
        sa.Column("first_seen_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("state_at", sa.Float),
        sa.Column("online", sa.Boolean),
        sa.Column("online_since", sa.Float),
        sa.Column("version", sa.String(40)),
        sa.Column("voice", sa.Text),
        sa.Column("voice_fallback", sa.Boolean),
        sa.Column("clock_synced", sa.Boolean),
        sa.Column("audio_error", sa.Text),
        sa.Column("amplifier_fault", sa.Text),
        sa.Column("storage_fault", sa.Text),
        sa.Column("groups", sa.Text),
        sa.Column("on_air", sa.String(64)),
        sa.Column("queue", sa.Integer),
        sa.Column("state", sa.Text),
        sa.Column("max_seq", sa.Integer),
    )
    op.create_table(
        "station_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("station", sa.String(130), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("change", sa.Text, nullable=False),
    )
    op.create_index("station_changes_station", "station_changes", ["station", "at"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("station", sa.String(130), nullable=False),
        sa.Column("seq", sa.Integer),
        sa.Column("bulletin_id", sa.String(64)),
        sa.Column("rev", sa.Integer),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("at", sa.String(40)),
        sa.Column("at_epoch", sa.Float),
        sa.Column("occurrence", sa.String(40)),
        sa.Column("detail", sa.Text),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("stored_at", sa.Float, nullable=False),
        sa.UniqueConstraint("station", "seq", name="events_station_seq"),
    )
    op.create_index("events_bulletin", "events", ["bulletin_id", "station"])
    op.create_index("events_at", "events", ["at_epoch"])
    op.create_table(
        "gaps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("station", sa.String(130), nullable=False),
        sa.Column("first_seq", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("noticed_at", sa.Float, nullable=False),
    )
    op.create_index("gaps_station", "gaps", ["station", "first_seq"])
    op.create_table(
        "bulletins",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bulletin_id", sa.String(64), nullable=False),
        sa.Column("rev", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("targets", sa.Text, nullable=False),
        sa.Column("sender", sa.String(120), nullable=False),
        sa.Column("issuer", sa.String(64)),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("sent_at", sa.Float, nullable=False),
        sa.Column("cancelled_at", sa.Float),
        sa.Column("cancelled_by", sa.String(120)),
        sa.UniqueConstraint("bulletin_id", "rev", name="bulletins_id_rev"),
    )
    op.create_table(
        "bulletin_stations",
        sa.Column("bulletin", sa.Integer, sa.ForeignKey("bulletins.id"), primary_key=True),
        sa.Column("station", sa.String(130), primary_key=True),
        sa.Column("expected", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("received_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("updated_at", sa.Float),
    )
    op.create_index("bulletin_stations_status", "bulletin_stations", ["bulletin", "status"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("token", sa.String(120)),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("client", sa.String(64)),
        sa.Column("detail", sa.Text),
    )


def downgrade() -> None:
    for table in ("audit", "tokens", "bulletin_stations", "bulletins", "gaps", "events", "station_changes", "stations"):
        op.drop_table(table)
