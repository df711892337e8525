"""Alembic environment: always handed an open connection by correlator.store.engine."""

from alembic import context

from correlator.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
