"""The outbox of messages to sinks (chat, webhooks, Git), one row per incident and sink.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("desired", sa.Text(), nullable=False),
        sa.Column("desired_sha", sa.String(length=64), nullable=False),
        sa.Column("delivered_sha", sa.String(length=64), nullable=True),
        sa.Column("remote", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_deliveries_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("incident_id", "sink", name=op.f("uq_deliveries_incident_id_sink")),
    )
    op.create_index(
        op.f("ix_deliveries_state_available_at"),
        "deliveries",
        ["state", "available_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_deliveries_state_available_at"), table_name="deliveries")
    op.drop_table("deliveries")
