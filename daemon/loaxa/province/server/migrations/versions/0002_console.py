"""The web console: users, sessions, login failures, drafts, station metadata, media; audit names the user;
an index for the watch page's live stream.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("language", sa.String(4)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled_at", sa.Float),
        sa.Column("last_login_at", sa.Float),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("client", sa.String(64)),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("name", sa.String(64)),
        sa.Column("client", sa.String(64)),
    )
    op.create_index("login_failures_at", "login_failures", ["at"])
    op.create_table(
        "drafts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("command", sa.Text),
        sa.Column("targets", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("editor", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("submitted_at", sa.Float),
        sa.Column("approver", sa.String(64)),
        sa.Column("approved_at", sa.Float),
        sa.Column("comment", sa.Text),
        sa.Column("bulletin_id", sa.String(64)),
    )
    op.create_table(
        "station_meta",
        sa.Column("station", sa.String(130), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("commune_name", sa.Text),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("note", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "media",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("mime", sa.String(64), nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("duration_s", sa.Float),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("uploaded_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("user", sa.String(64)))
    # The watch page's live stream asks for one bulletin's rows changed since it last looked.
    op.create_index("bulletin_stations_updated", "bulletin_stations", ["bulletin", "updated_at"])


def downgrade() -> None:
    op.drop_index("bulletin_stations_updated", "bulletin_stations")
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("user")
    for table in ("media", "station_meta", "drafts", "login_failures", "sessions", "users"):
        op.drop_table(table)
