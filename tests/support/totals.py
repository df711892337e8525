"""Row counts of every table of an application's store: what "a refused request stored
nothing" is checked against."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from correlator.store.schema import metadata
from correlator.web.state import STORE


async def store_totals(client: Any) -> dict[str, int]:
    """Each table's row count in the store of the app that `client` serves."""

    def count(connection: Any) -> dict[str, int]:
        return {
            table.name: int(connection.execute(select(func.count()).select_from(table)).scalar())
            for table in metadata.sorted_tables
        }

    totals: dict[str, int] = await client.server.app[STORE].read(count)
    return totals
