"""Alerts and incidents stored before the intake read every namespace label correlation reads
(`destination_workload_namespace`, …) get their namespace now, so `?namespace=` finds them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The labels correlation reads a namespace from, in order (correlator.analysis.scope at the
# time of this migration; a migration must not follow later changes of the code).
NAMESPACE_LABELS = (
    "namespace",
    "destination_workload_namespace",
    "kubernetes_namespace",
    "exported_namespace",
)
INDEXED_TEXT_MAX = 256
BATCH = 1000


def _namespace(*documents: str | None) -> str | None:
    """As the intake reads it: the documents merged (later ones win), then the first of
    NAMESPACE_LABELS that is set."""
    labels: dict[str, Any] = {}
    for document in documents:
        try:
            parsed: Any = json.loads(document) if document else {}
        except ValueError:
            continue
        if isinstance(parsed, dict):
            labels.update(parsed)
    for name in NAMESPACE_LABELS:
        value = labels.get(name)
        if isinstance(value, str) and value:
            return value.replace("\x00", "\ufffd")[:INDEXED_TEXT_MAX]
    return None


def _backfill(table: str, columns: tuple[str, ...]) -> None:
    connection = op.get_bind()
    last = 0
    while True:
        rows = connection.execute(
            sa.text(
                f"SELECT id, {', '.join(columns)} FROM {table} "  # noqa: S608 (constant names)
                "WHERE namespace IS NULL AND id > :last ORDER BY id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).fetchall()
        if not rows:
            return
        found = [
            {"b_id": row[0], "b_namespace": namespace}
            for row in rows
            if (namespace := _namespace(*row[1:])) is not None
        ]
        if found:
            connection.execute(
                sa.text(f"UPDATE {table} SET namespace = :b_namespace WHERE id = :b_id"),  # noqa: S608
                found,
            )
        last = rows[-1][0]


def upgrade() -> None:
    _backfill("alerts", ("labels",))
    # An incident's: its common labels overridden by its group labels, as the intake merges them.
    _backfill("incidents", ("common_labels", "group_labels"))


def downgrade() -> None:
    """Nothing to undo: the namespaces filled in are what the labels say."""
