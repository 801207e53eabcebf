"""A small builder for the records' list queries: every list pages by a cursor and
filters by status, type and time, and the optional filters must stay bind parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hub.records.store import Page, Row, Rows


def as_row(record: asyncpg.Record) -> Row:
    """A row as the records seam hands it out: a plain mapping, not a driver object."""
    return dict(record.items())


@dataclass
class Where:
    parts: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def add(self, sql: str, *values: Any) -> Where:
        """`sql` names its parameters `{0}`, `{1}`, ... in the order of `values`."""
        numbers = []
        for value in values:
            self.args.append(value)
            numbers.append(f"${len(self.args)}")
        self.parts.append(sql.format(*numbers))
        return self

    def bind(self, value: Any) -> str:
        """A parameter used outside the conditions (in the select list); its placeholder."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add_if(self, sql: str, value: Any) -> Where:
        if value is not None:
            self.add(sql, value)
        return self

    def flag(self, status: str | None, columns: dict[str, str]) -> Where:
        """A `status` filter that names a boolean column (`important`: `is_important`);
        a status the list does not know filters nothing."""
        column = columns.get(status) if status is not None else None
        if column is not None:
            self.add(column)
        return self

    def page(self, key: str, time_column: str, page: Page) -> Where:
        self.add_if(f"{key} > {{0}}", page.cursor)
        self.add_if(f"{time_column} >= {{0}}", page.after)
        self.add_if(f"{time_column} < {{0}}", page.before)
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "true"

    def limit(self, page: Page) -> str:
        # One extra row tells the caller whether there is a next page.
        self.args.append(page.limit + 1)
        return f"LIMIT ${len(self.args)}"


async def fetch_page(
    conn: asyncpg.Pool | asyncpg.Connection,
    select: str,
    where: Where,
    key: str,
    page: Page,
    time_column: str = "created_at",
) -> Rows:
    """Rows of one page in key order, and the cursor of the next page (or None); the
    cursor and the `after`/`before` window filter on the same key and time the page reads."""
    where.page(key, time_column, page)
    limit = where.limit(page)
    found = await conn.fetch(f"{select} WHERE {where.sql} ORDER BY {key} {limit}", *where.args)
    more = len(found) > page.limit
    rows = [as_row(record) for record in found[: page.limit]]
    key_name = key.rsplit(".", 1)[-1]
    return rows, (rows[-1][key_name] if more and rows else None)
