"""Every analysis replayable, every confirmed cause a test case: the inputs of each incident's
latest analysis (an incident bundle, tar.gz) and the cause a responder confirmed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _incident() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("incident_id", _ID, nullable=False)


def upgrade() -> None:
    op.create_table(
        "bundles",
        _incident(),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("kinds", sa.Text(), nullable=False),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("team", sa.Text(), nullable=True),
        sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_bundles_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_bundles")),
    )
    op.create_index(op.f("ix_bundles_created_at"), "bundles", ["created_at"], unique=False)
    op.create_table(
        "causes",
        _incident(),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.Text(), nullable=True),
        sa.Column("principal", sa.Text(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("app", sa.Text(), nullable=True),
        sa.Column("team", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_causes_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_causes")),
    )
    op.create_index(
        op.f("ix_causes_app_answered_at"), "causes", ["app", "answered_at"], unique=False
    )
    op.create_index(op.f("ix_causes_answered_at"), "causes", ["answered_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_causes_answered_at"), table_name="causes")
    op.drop_index(op.f("ix_causes_app_answered_at"), table_name="causes")
    op.drop_table("causes")
    op.drop_index(op.f("ix_bundles_created_at"), table_name="bundles")
    op.drop_table("bundles")
