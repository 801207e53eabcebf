"""POST /api/v2/session-summary: seed 003's multi-channel summary.

The body is validated by seed 003's rules table; every rule that fails is reported with
its own `rule` name in a 422 (`details.errors`), so a client can tell "in the future"
from "too old" without parsing messages. The body may be flat (seed 003's API example)
or `{"session_data": {...}, "channels": [...], "publish_immediately": ...}`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from annotated_types import Interval, Len, MaxLen
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.routing import Route

from hub.records.channel_summary import CHANNELS, QUALITY_TABLE, quality, render
from hub.validation import WORKSHOP_MINIMUM, Conditional, Problem, required_for_live, workshop_minimum
from hub.values import AwareDatetime, Finite, SessionId

from ..api import operation
from ..session_fields import SessionType, Title, not_blank

MAX_AGE = timedelta(days=30)
Channel = Literal["email", "web", "social"]


def _recent(value: datetime) -> datetime:
    now = datetime.now(UTC)
    if value > now:
        raise PydanticCustomError("not_future", "must not be in the future")
    if now - value > MAX_AGE:
        raise PydanticCustomError("max_age", "must be at most 30 days old")
    return value


def _channels(value: list[str]) -> list[str]:
    if not value or not all(c in CHANNELS for c in value):
        raise PydanticCustomError("choice", "must be a non-empty list of " + ", ".join(CHANNELS))
    return list(dict.fromkeys(value))


class ParticipantFeedback(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    items: list[Any] = []


class SummaryData(Conditional):
    """Seed 003's session data model and its validation rules table; fields outside the
    model are kept (the seed's own example carries some)."""

    model_config = ConfigDict(strict=True, extra="allow")

    title: Title
    content: Annotated[str, MaxLen(10_000)] | None = None
    session_id: SessionId
    session_duration: Annotated[int, Interval(ge=1, le=7200)] = Field(description="seconds (max 2 hours)")
    participant_count: Annotated[int, Interval(ge=1, le=1000)] = Field(
        description=f"at least {WORKSHOP_MINIMUM} for workshops"
    )
    breathing_techniques: Annotated[list[Annotated[str, BeforeValidator(not_blank), Len(1, 200)]], Len(1, 10)]
    average_hrv_improvement: Annotated[Finite, Interval(ge=-100, le=200)] | None = Field(
        None,
        description="percent; quality score: "
        + "; ".join(f"{test} -> {score}" for test, score, _ in QUALITY_TABLE),
    )
    session_type: SessionType = "live"
    instructor_name: Annotated[str, MaxLen(100)] | None = Field(
        None, description="required for live sessions"
    )
    session_date: Annotated[AwareDatetime, AfterValidator(_recent)] = Field(
        description="not in the future, at most 30 days old"
    )
    key_achievements: Annotated[list[Annotated[str, MaxLen(500)]], MaxLen(20)] | None = None
    participant_feedback: ParticipantFeedback | None = None
    metrics_summary: dict[str, Any] | None = None

    @classmethod
    def conditions(cls, data: dict[str, Any]) -> list[Problem]:
        session_type = data.get("session_type", "live")
        found = required_for_live("instructor_name", session_type, data.get("instructor_name"))
        return found + workshop_minimum("participant_count", session_type, data.get("participant_count"))


class SummaryRequest(SummaryData):
    """Flat session data (seed 003's API example), or `{session_data, channels,
    publish_immediately}` (its distribution example)."""

    model_config = ConfigDict(
        strict=True,
        extra="allow",
        json_schema_extra=lambda schema: _either_form(schema),
    )

    channels: Annotated[list[str], AfterValidator(_channels)] = Field(
        list(CHANNELS), json_schema_extra={"items": {"enum": list(CHANNELS)}}
    )
    publish_immediately: bool = False

    @classmethod
    def conditions(cls, data: dict[str, Any]) -> list[Problem]:
        inner = data.get("session_data", data)
        return super().conditions(inner) if isinstance(inner, dict) else []

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and "session_data" in data:
            inner = data["session_data"]
            if not isinstance(inner, dict):
                raise PydanticCustomError("type", "must be a JSON object", {"field": "session_data"})
            options = {k: data[k] for k in ("channels", "publish_immediately") if k in data}
            return {**inner, **options}
        return data

    def session_data(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"channels", "publish_immediately"})
        return {**data, "breathing_techniques": list(self.breathing_techniques)}


def _either_form(schema: dict[str, Any]) -> None:
    flat = schema.pop("required", [])
    schema["properties"]["session_data"] = {
        "type": "object",
        "description": "the session data, when the options are beside it",
    }
    schema["anyOf"] = [{"required": flat}, {"required": ["session_data"]}]


class ChannelSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["published", "preview"]
    content_id: str
    session_id: str
    preview_urls: dict[str, str]
    quality_score: float | None
    quality_action: str
    channels: list[Channel]
    email: dict[str, Any] | None = Field(None, description="subject, html, text")
    web: dict[str, Any] | None = Field(None, description="title, content, slug, seo_description")
    social: dict[str, Any] | None = Field(None, description="twitter, linkedin, facebook")
    newsletter: dict[str, Any] | None = Field(None, description="the same as email (seed 003's name)")
    web_update: dict[str, Any] | None = Field(None, description="the same as web (seed 003's name)")


# any authenticated caller; nothing of the account is read or written
@operation(
    "Seed 003's multi-channel summary (email, web, social) with the HRV quality score",
    ChannelSummary,
    touches_store=False,
)
async def session_summary(request: Request, body: SummaryRequest) -> dict[str, Any]:
    data = body.session_data()
    score, action = quality(data.get("average_hrv_improvement"))
    # The operator's templates (HUB_TEMPLATES_DIR), as for the summary of a completed session.
    content = render(data, body.channels, request.app.state.channel_renderer)
    response: dict[str, Any] = {
        "status": "published" if body.publish_immediately else "preview",
        "content_id": str(uuid.uuid4()),
        "session_id": data["session_id"],
        "preview_urls": {"session": f"/sessions/{data['session_id']}"},
        "quality_score": score,
        "quality_action": action,
        "channels": body.channels,
        **content,
    }
    # Seed 003's response names for the same content.
    if "email" in content:
        response["newsletter"] = content["email"]
    if "web" in content:
        response["web_update"] = content["web"]
    return response


routes = [Route("/api/v2/session-summary", session_summary, methods=["POST"])]
