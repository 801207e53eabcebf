"""The records store seam (`hub.records.store.RecordsStore`) on PostgreSQL: the projection
and its three parts, all on the hub's one connection pool."""

from __future__ import annotations

import asyncpg

from .catalog import PgCatalogStore
from .content import PgContentStore
from .projection import PgProjectionStore
from .session_fields import PgSessionFieldsStore


class PgRecordsStore(PgProjectionStore):
    def __init__(self, pool: asyncpg.Pool):
        super().__init__(pool)
        self.sessions = PgSessionFieldsStore(pool)
        self.content = PgContentStore(pool)
        self.catalog = PgCatalogStore(pool)
