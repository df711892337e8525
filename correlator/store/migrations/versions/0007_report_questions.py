"""Reports remember the question they answer, so replicas can share one analysis.

`question` is a digest of what the analysis depends on (services in scope, namespaces, onset,
the WebApplications, the correlation settings); `analysed_at` when that analysis ran. A
replica correlating an incident with the same question within `correlation.share_s` of
`analysed_at` reuses the stored report instead of analysing again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("question", sa.String(64), nullable=True))
        batch.add_column(sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(
            batch.f("ix_reports_question_analysed_at"), ["question", "analysed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_index(batch.f("ix_reports_question_analysed_at"))
        batch.drop_column("analysed_at")
        batch.drop_column("question")
