"""Daily follow-up check-ins (seed 002): when one is due, and what it says.

Pure rules over a session's status and record fields; the endpoints and the store's
candidate query (`hub.records.store.SessionFieldsStore.follow_up_candidates`) follow them.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..lifecycle import IN_PROGRESS

FOLLOW_UP_STATUSES = (IN_PROGRESS,)  # seed 002's ACTIVE


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_hhmm(value: Any) -> time | None:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        return None
    hours, minutes = value[:2], value[3:]
    if not (value.isascii() and hours.isdigit() and minutes.isdigit()):  # no '¹' or '٣'
        return None
    if int(hours) > 23 or int(minutes) > 59:
        return None
    return time(int(hours), int(minutes))


def follow_up_due(status: str, attributes: dict[str, Any], now: datetime) -> bool:
    """Seed 002's rules, exactly: the session is active, follow-ups are enabled, the
    current time (in the session's time zone) is at or after the preferred time, and
    no follow-up was sent earlier the same day."""
    if status not in FOLLOW_UP_STATUSES or attributes.get("follow_up_enabled") is not True:
        return False
    preferred = parse_hhmm(attributes.get("follow_up_time") or "00:00")
    if preferred is None:
        return False
    tz = zone(attributes.get("follow_up_timezone"))
    local_now = now.astimezone(tz)
    if local_now.time() < preferred:
        return False
    last = attributes.get("last_follow_up_at")
    if isinstance(last, str):
        try:
            sent = datetime.fromisoformat(last.replace("Z", "+00:00")).astimezone(tz)
        except ValueError:
            return True
        return sent.date() < local_now.date()
    return True


def check_in_prompt(title: str, attributes: dict[str, Any]) -> str:
    """The generated check-in: where we left off, then an open question."""
    topic = attributes.get("primary_topic")
    plan = attributes.get("next_plan")
    subject = f"your {topic}" if isinstance(topic, str) and topic else f'"{title}"'
    prompt = f"Last time we talked about {subject}."
    if isinstance(plan, str) and plan:
        prompt += f" {plan.rstrip('.')}."
    return prompt + " How have you been feeling since then?"
