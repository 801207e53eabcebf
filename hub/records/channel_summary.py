"""Seed 003's multi-channel session summary: email, web and social content rendered from
validated session data (by the templates of `hub.channel_templates`, the same as the
summary a completed session gets), and the quality score of its HRV table. Pure and
deterministic: the same data always renders the same content."""

from __future__ import annotations

from typing import Any

from ..channel_templates import CHANNELS, ChannelRenderer, channel_context

__all__ = ["CHANNELS", "QUALITY_TABLE", "context", "quality", "render"]

# Seed 003's quality table, in order: the first row whose test holds gives the score.
QUALITY_TABLE: tuple[tuple[str, float, str], ...] = (
    ("> 15%", 5.0, "Feature content"),
    ("> 10%", 4.0, "Highlight achievement"),
    ("> 5%", 3.0, "Standard summary"),
    ("0-5%", 2.0, "Review technique"),
    ("< 0%", 1.0, "Investigate issues"),
)


def quality(improvement: float | None) -> tuple[float | None, str]:
    """(score, action) for an average HRV improvement in percent; None without HRV data."""
    if improvement is None:
        return None, "No HRV data"
    if improvement > 15:
        row = QUALITY_TABLE[0]
    elif improvement > 10:
        row = QUALITY_TABLE[1]
    elif improvement > 5:
        row = QUALITY_TABLE[2]
    elif improvement >= 0:
        row = QUALITY_TABLE[3]
    else:
        row = QUALITY_TABLE[4]
    return row[1], row[2]


_RENDERER = ChannelRenderer()  # the built-in templates (hub/templates/channel_summary/)


def context(data: dict[str, Any]) -> dict[str, Any]:
    """The templates' facts from validated seed-003 session data."""
    items = (data.get("participant_feedback") or {}).get("items") or []
    feedback = [
        {"name": str(i.get("participant_name", "A participant")), "comment": str(i.get("comment", ""))}
        for i in items
        if isinstance(i, dict) and i.get("comment")
    ]
    return channel_context(
        title=data["title"],
        session_id=data["session_id"],
        participants=data["participant_count"],
        duration_seconds=data["session_duration"],
        techniques=list(data["breathing_techniques"]),
        improvement=data.get("average_hrv_improvement"),
        instructor=data.get("instructor_name"),
        content=data.get("content") or "",
        achievements=list(data.get("key_achievements") or []),
        feedback=feedback,
    )


def render(
    data: dict[str, Any], channels: list[str], renderer: ChannelRenderer | None = None
) -> dict[str, Any]:
    """The same templates as the summary a session gets when it completes."""
    return (renderer or _RENDERER).render(context(data), tuple(channels))
