"""The records store seam: what the records endpoints and the projector need from storage.

`storage.records.store.PgRecordsStore` implements it on PostgreSQL; the composition root
(`handlers.app`) builds it, gives it to the hub's projector worker and to the endpoints.
The guarantees below are the ones the rest of the hub relies on:

- **Derived from the log.** Interactions, log-sent notes and feedback, and summaries are
  rows the projector (`hub.records.projector.apply`) derived from stored events. `catch_up`
  projects every event after the session's checkpoint and moves the checkpoint in the same
  transaction; catch-ups of one session never interleave (across processes too), and a
  row is written at most once per (session, seq), so a repeated catch-up is harmless.
  `rebuild` forgets the derived rows (never the ones written over HTTP) and projects the
  whole log again: the result equals the live build.
- **Pages.** Every list answers `(rows, next_cursor)`: rows in key order after
  `page.cursor`, at most `page.limit`, and `next_cursor` None on the last page. A row is a
  plain mapping of column to value.
- **Refusals.** Data that cannot be stored raises one of the exceptions below and changes
  nothing (each is a `hub.errors` refusal of the fitting kind); anything else that escapes
  means the database failed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .. import errors
from ..store import SessionRecord
from .projector import ProjectionState
from .summaries import SummaryContext

Row = dict[str, Any]  # one stored row: column name -> value
Rows = tuple[list[Row], int | None]  # one page of rows and the cursor of the next page
# A token's `sessions` claim: the session ids a listing may show (None: every one of the
# account). A session outside it is not there for any listing, relation or count.
Only = Collection[str] | None


@dataclass(frozen=True)
class Page:
    """One list request: `cursor` is the last key of the previous page."""

    limit: int = 50
    cursor: int | None = None
    after: datetime | None = None  # created (or happened) at or after
    before: datetime | None = None  # created (or happened) before
    status: str | None = None
    type: str | None = None


class NotFound(errors.NotFound):
    """The artifact, template or topic link named is not there."""


class Conflict(errors.Conflict):
    """The change contradicts what is stored (approved twice, a template name taken)."""


class FeedbackExists(errors.Conflict):
    """This user already gave feedback of this type on this message."""


class MessageNotFound(errors.NotFound):
    def __init__(self, found_type: str | None):
        super().__init__(f"no prompt or response at this seq (found: {found_type})")
        self.found_type = found_type  # None: no such seq; else the event is not a message


class ParentNotFound(errors.Invalid):
    """`parent_session_id` names no session of the account."""


class HierarchyCycle(errors.Conflict):
    """The new parent would make the session its own ancestor (or the chain too deep)."""


class ProjectionStore(Protocol):
    """What the projector worker needs: checkpoints and catch-ups."""

    async def catch_up(self, session_pk: int) -> int:
        """Project every stored event after the checkpoint; return the new checkpoint."""
        ...

    async def behind(self, limit: int) -> list[int]:
        """Sessions whose log head is ahead of their projection."""
        ...


class SessionFieldsStore(Protocol):
    """A session's record fields, its place in a hierarchy and its state transitions."""

    async def update(
        self,
        session_pk: int,
        changes: dict[str, Any],
        title: str | None = None,
        trigger: tuple[str, str | None] = ("user_action", None),
    ) -> SessionRecord:
        """Apply `changes` (None removes a field; `state` merges key by key) atomically;
        raises `ParentNotFound` or `HierarchyCycle` for a bad `parent_session_id`."""
        ...

    async def ancestors(self, account_id: str, session_id: str) -> list[SessionRecord]:
        """The session's parent, grandparent, ... up to the root (nearest first)."""
        ...

    async def children(
        self, account_id: str, session_id: str, page: Page, only: Only = None
    ) -> tuple[list[SessionRecord], int | None]: ...

    async def transitions(self, session_pk: int, page: Page) -> Rows: ...

    async def follow_up_candidates(
        self, account_id: str, session_type: str | None, after_pk: int | None, limit: int
    ) -> list[SessionRecord]:
        """In-progress sessions with follow-ups enabled, by pk; the time rules are the caller's."""
        ...


class ContentStore(Protocol):
    """What the log left behind, and the notes and feedback written over HTTP."""

    async def interactions(self, session_pk: int, page: Page) -> Rows: ...

    async def notes(self, session_pk: int, page: Page) -> Rows: ...

    async def add_note(self, session_pk: int, fields: dict[str, Any], user_id: str, role: str) -> Row: ...

    async def feedback(self, session_pk: int, page: Page, message_seq: int | None = None) -> Rows: ...

    async def add_feedback(
        self, session_pk: int, message_seq: int, user_id: str, feedback_type: str, comment: str | None
    ) -> Row:
        """Raises `MessageNotFound` unless `message_seq` is a prompt or response of the
        session, `FeedbackExists` when the user gave this type on it already."""
        ...

    async def summaries(self, session_pk: int, page: Page) -> Rows: ...

    async def latest_summary(self, session_pk: int) -> Row | None: ...

    async def counts(self, session_pk: int) -> dict[str, int]:
        """How many interactions, responses, notes, artifacts, approved, feedback, topics."""
        ...

    async def snapshot(self, session_pk: int) -> dict[str, list[dict[str, Any]]]:
        """Every log-derived row of the session, for comparing a rebuild with the live build."""
        ...


class CatalogStore(Protocol):
    """Artifacts of a session, and the account's templates and topics."""

    async def artifacts(self, session_pk: int, page: Page) -> Rows: ...

    async def add_artifact(self, session_pk: int, fields: dict[str, Any], user_id: str) -> Row: ...

    async def approve_artifact(
        self, session_pk: int, artifact_id: int, user_id: str, include: bool | None
    ) -> Row:
        """Raises `NotFound`, or `Conflict` when it is approved already."""
        ...

    async def templates(self, account_id: str, page: Page) -> Rows: ...

    async def template(self, account_id: str, template_id: int) -> Row:
        """Raises `NotFound`."""
        ...

    async def add_template(self, account_id: str, fields: dict[str, Any], user_id: str) -> Row:
        """Raises `Conflict` when the account has a template of that name."""
        ...

    async def topics(self, account_id: str, page: Page, only: Only = None) -> Rows:
        """The account's topics, each with how many sessions (of `only`) it is linked to."""
        ...

    async def session_topics(self, session_pk: int, page: Page) -> Rows: ...

    async def link_topic(self, account_id: str, session_pk: int, name: str, fields: dict[str, Any]) -> Row:
        """Create the account's topic if new and link it; one primary focus per session."""
        ...

    async def unlink_topic(self, session_pk: int, topic_id: int) -> None:
        """Raises `NotFound` when the topic is not linked to the session."""
        ...

    async def topic_sessions(self, account_id: str, topic_id: int, page: Page, only: Only = None) -> Rows: ...


class RecordsStore(ProjectionStore, Protocol):
    """The whole records store: the projection and its three parts."""

    @property
    def sessions(self) -> SessionFieldsStore: ...

    @property
    def content(self) -> ContentStore: ...

    @property
    def catalog(self) -> CatalogStore: ...

    async def checkpoint(self, session_pk: int) -> int: ...

    async def projection_state(self, session_pk: int) -> ProjectionState: ...

    async def rebuild(self, session_pk: int) -> int:
        """Forget every log-derived row of the session and project its whole log again."""
        ...

    async def summary_context(self, session_pk: int, at: datetime | None) -> SummaryContext:
        """The record fields a summary speaks about, and what existed at `at` (None: now)."""
        ...
