"""Work items are claimed by walking the (state, due_at) index in due order.

The claim asked for the first claimable item (pending and available, or running under a lapsed
lease) in `due_at` order with one `OR`: both databases answered it by collecting every
claimable item and sorting them, so each claim cost as much as the backlog (a storm's
thousands of items, on the writer the intake waits for). It now asks each state on its own,
in due order, and stops at the first. The (state, available_at) index led SQLite's planner to
the sort; nothing else used it, so it goes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_items") as batch:
        batch.drop_index(batch.f("ix_work_items_state_available_at"))


def downgrade() -> None:
    with op.batch_alter_table("work_items") as batch:
        batch.create_index(
            batch.f("ix_work_items_state_available_at"), ["state", "available_at"], unique=False
        )
