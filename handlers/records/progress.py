"""How a session is going and what it achieved: summaries (every 5 participant responses
and at the end), the progress view of seed 000, and the metrics derived from the log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.records.projector import facts
from hub.records.summaries import indicator_checks, render

from ..errors import json_response
from ..sessions import archives_of, caller, hub_of, load_session, read_all
from .common import SESSION_ID, ensure_projected, listing, op, page_from, records_of, row_json


def _elapsed(record: Any, now: datetime) -> int | None:
    if record.started_at is None:
        return None
    end = record.ended_at or now
    return max(0, int((end - record.started_at).total_seconds()))


async def list_summaries(request: Request) -> Response:
    record = await load_session(request, caller(request))
    page = page_from(request, types=("periodic", "final"))
    await ensure_projected(request, record)
    rows, cursor = await records_of(request).content.summaries(record.pk, page)
    return json_response(listing("summaries", [row_json(r) for r in rows], cursor))


async def current_summary(request: Request) -> Response:
    """The latest stored summary, and one rendered now from the log and the record."""
    record = await load_session(request, caller(request))
    await ensure_projected(request, record)
    records = records_of(request)
    latest = await records.content.latest_summary(record.pk)
    context = await records.summary_context(record.pk, None)
    state = await records.projection_state(record.pk)
    kind = "final" if record.status in ("completed", "cancelled") else "current"
    text, plan, outline = render(facts(state), context, kind, _elapsed(record, datetime.now(UTC)))
    return json_response(
        {
            "session_id": record.session_id,
            "latest": row_json(latest) if latest else None,
            "current": {"summary_text": text, "next_plan_text": plan, "outline": outline},
        }
    )


async def progress(request: Request) -> Response:
    """Seed 000's get_session_progress; an indicator is met when it is in met_indicators."""
    record = await load_session(request, caller(request))
    await ensure_projected(request, record)
    counts = await records_of(request).content.counts(record.pk)
    attributes = record.attributes
    context = await records_of(request).summary_context(record.pk, None)
    success = indicator_checks(context.success_indicators, context.met_indicators)
    completion = indicator_checks(context.completion_indicators, context.met_indicators)
    elapsed = _elapsed(record, datetime.now(UTC))
    scheduled = attributes.get("scheduled_duration_minutes")
    return json_response(
        {
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
    )


async def metrics(request: Request) -> Response:
    record = await load_session(request, caller(request))
    events = await read_all(hub_of(request), record)
    metrics = await archives_of(request).metrics(record, events)
    return json_response({"session_id": record.session_id, "metrics": metrics})


_S = "/api/v2/session/{session_id}"
routes = [
    Route(f"{_S}/summaries", list_summaries, methods=["GET"]),
    Route(f"{_S}/summary", current_summary, methods=["GET"]),
    Route(f"{_S}/progress", progress, methods=["GET"]),
    Route(f"{_S}/metrics", metrics, methods=["GET"]),
]

openapi_paths: dict[str, Any] = {
    f"{_S}/summaries": {
        "get": op("Stored summaries (type = periodic|final, time)", params=[SESSION_ID], listed=True)
    },
    f"{_S}/summary": {"get": op("Latest stored summary and one rendered now", params=[SESSION_ID])},
    f"{_S}/progress": {"get": op("Progress: counts, indicators, duration so far", params=[SESSION_ID])},
    f"{_S}/metrics": {"get": op("Metrics derived from the log", params=[SESSION_ID])},
}
