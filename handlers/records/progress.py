"""How a session is going and what it achieved: summaries (every 5 participant responses
and at the end), the progress view of seed 000, and the metrics derived from the log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.routing import Route

from hub.event_data import SessionSummary
from hub.lifecycle import TERMINAL_STATUSES
from hub.records.projector import facts
from hub.records.summaries import indicator_checks, render
from hub.store import SessionRecord

from ..api import hub_of, operation
from ..log_reads import session_metrics
from ..session_models import Metrics
from ..sessions import archives_of
from .common import PageQuery, ensure_projected, listing, records_of, row_json, type_filter
from .rows import Summaries, SummaryRow


class SummariesQuery(PageQuery):
    type: Literal["periodic", "final"] | None = type_filter("kind")


class Rendered(BaseModel):
    summary_text: str
    next_plan_text: str
    outline: dict[str, Any]


class CurrentSummary(BaseModel):
    session_id: str
    latest: SummaryRow | None = Field(description="the latest stored summary")
    current: Rendered = Field(description="rendered now from the log and the record")
    channels: SessionSummary | None = Field(
        None, description="the multi-channel summary written when the session completed (null before)"
    )


class IndicatorCheck(BaseModel):
    indicator: str
    met: bool


class Progress(BaseModel):
    session_id: str
    status: str
    duration_so_far: int | None = Field(description="seconds since the start")
    duration_so_far_minutes: int | None
    scheduled_duration_minutes: int | None
    interactions_count: int
    responses_count: int
    artifacts_count: int
    approved_artifacts_count: int
    notes_count: int
    feedback_count: int
    topics_count: int
    success_indicators: list[IndicatorCheck]
    completion_indicators: list[IndicatorCheck]
    can_complete: bool = Field(description="every completion indicator is met")
    completion_percentage: int | None
    success_rating: int | None


class SessionMetrics(BaseModel):
    session_id: str
    metrics: Metrics


def _elapsed(record: Any, now: datetime) -> int | None:
    if record.started_at is None:
        return None
    end = record.ended_at or now
    return max(0, int((end - record.started_at).total_seconds()))


@operation("Stored summaries (type = periodic|final, time)", Summaries, expensive=True)
async def list_summaries(request: Request, record: SessionRecord, query: SummariesQuery) -> dict[str, Any]:
    await ensure_projected(request, record)
    return listing("summaries", await records_of(request).content.summaries(record.pk, query.page()))


@operation("Latest stored summary and one rendered now", CurrentSummary, expensive=True)
async def current_summary(request: Request, record: SessionRecord) -> dict[str, Any]:
    """The latest stored summary, and one rendered now from the log and the record."""
    await ensure_projected(request, record)
    records = records_of(request)
    latest = await records.content.latest_summary(record.pk)
    context = await records.summary_context(record.pk, None)
    state = await records.projection_state(record.pk)
    kind = "final" if record.status in TERMINAL_STATUSES else "current"
    text, plan, outline = render(facts(state), context, kind, _elapsed(record, datetime.now(UTC)))
    return {
        "session_id": record.session_id,
        "latest": row_json(latest) if latest else None,
        "current": {"summary_text": text, "next_plan_text": plan, "outline": outline},
        # The multi-channel summary written when the session completed (hub/end_summary.py).
        "channels": await request.app.state.summaries.latest(record.pk),
    }


@operation("Progress: counts, indicators, duration so far", Progress, expensive=True)
async def progress(request: Request, record: SessionRecord) -> dict[str, Any]:
    """Seed 000's get_session_progress; an indicator is met when it is in met_indicators."""
    await ensure_projected(request, record)
    counts = await records_of(request).content.counts(record.pk)
    attributes = record.attributes
    context = await records_of(request).summary_context(record.pk, None)
    success = indicator_checks(context.success_indicators, context.met_indicators)
    completion = indicator_checks(context.completion_indicators, context.met_indicators)
    elapsed = _elapsed(record, datetime.now(UTC))
    scheduled = attributes.get("scheduled_duration_minutes")
    return {
        "session_id": record.session_id,
        "status": record.status,
        "duration_so_far": elapsed,
        "duration_so_far_minutes": round(elapsed / 60) if elapsed is not None else None,
        "scheduled_duration_minutes": scheduled,
        "interactions_count": counts["interactions"],
        "responses_count": counts["responses"],
        "artifacts_count": counts["artifacts"],
        "approved_artifacts_count": counts["approved"],
        "notes_count": counts["notes"],
        "feedback_count": counts["feedback"],
        "topics_count": counts["topics"],
        "success_indicators": success,
        "completion_indicators": completion,
        "can_complete": all(c["met"] for c in completion),
        "completion_percentage": attributes.get("completion_percentage"),
        "success_rating": attributes.get("success_rating"),
    }


@operation("Metrics derived from the log", SessionMetrics, expensive=True)
async def metrics(request: Request, record: SessionRecord) -> dict[str, Any]:
    archived = await archives_of(request).metrics(record)  # a trimmed log's, kept
    return {
        "session_id": record.session_id,
        "metrics": archived or await session_metrics(hub_of(request), record),
    }


_S = "/api/v2/session/{session_id}"
routes = [
    Route(f"{_S}/summaries", list_summaries, methods=["GET"]),
    Route(f"{_S}/summary", current_summary, methods=["GET"]),
    Route(f"{_S}/progress", progress, methods=["GET"]),
    Route(f"{_S}/metrics", metrics, methods=["GET"]),
]
