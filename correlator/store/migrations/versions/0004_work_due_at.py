"""Work items get a due time: claims take the earliest, so new incidents go before refreshes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_items") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE work_items SET due_at = available_at")
    with op.batch_alter_table("work_items") as batch:
        batch.alter_column("due_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index(
        op.f("ix_work_items_state_due_at"), "work_items", ["state", "due_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_work_items_state_due_at"), table_name="work_items")
    with op.batch_alter_table("work_items") as batch:
        batch.drop_column("due_at")
