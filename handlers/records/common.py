"""Shared by the records endpoints: the records store, list paging and filters, row JSON."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from annotated_types import Interval, MaxLen
from pydantic import AliasChoices, BaseModel, Field
from starlette.requests import Request

from hub.errors import Unavailable
from hub.events import iso
from hub.records.store import Page, RecordsStore
from hub.store import SessionRecord
from hub.values import AwareDatetime, Cursor

from ..api import hub_of
from ..query import QueryInt, query_model

READERS = ("participant", "instructor", "observer", "admin")
PARTICIPANTS = ("participant", "instructor", "admin")  # people in the session, not observers


def records_of(request: Request) -> RecordsStore:
    """The records store the composition root (`handlers.app`) built for this app."""
    store: RecordsStore | None = getattr(request.app.state, "records", None)
    if store is None:  # the app always sets it; an app without records cannot serve these
        raise Unavailable("session records are not available on this hub")
    return store


async def ensure_projected(request: Request, record: SessionRecord) -> None:
    """Read-your-writes: project what the log holds before answering from the records."""
    worker = hub_of(request).records
    if worker is not None:
        await worker.ensure(record.pk)


class PageQuery(BaseModel):
    """`limit`, `cursor`, `after` and `before` of every records list; each list adds its
    own `status` and `type` filters."""

    model_config = query_model()

    limit: QueryInt[Annotated[int, Interval(ge=1, le=500)]] = Field(50, description="page size")
    cursor: QueryInt[Cursor] | None = None
    after: AwareDatetime | None = Field(None, description="only items at or after this time")
    before: AwareDatetime | None = Field(None, description="only items before this time")

    def page(self) -> Page:
        return Page(
            limit=self.limit,
            cursor=self.cursor,
            after=self.after,
            before=self.before,
            status=getattr(self, "status", None),
            type=getattr(self, "type", None),
        )


def type_filter(description: str) -> Any:
    """The `type` filter, also accepted as `session_type`."""
    return Field(None, validation_alias=AliasChoices("type", "session_type"), description=description)


AnyType = Annotated[str, MaxLen(200)]


class Listing(BaseModel):
    count: int
    next_cursor: int | None = Field(description="pass as `cursor` for the next page; null: last page")


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return value


def row_json(row: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {key: jsonable(value) for key, value in dict(row).items() if key not in drop}


def listing(
    name: str, found: tuple[Sequence[Any], int | None], render: Callable[[Any], dict[str, Any]] = row_json
) -> dict[str, Any]:
    """A page the store found (rows and the next cursor) as a list response."""
    rows, cursor = found
    items = [render(row) for row in rows]
    return {"count": len(items), name: items, "next_cursor": cursor}
