"""How the log's prompts, responses, notes and feedback read as a conversation.

Two folds read the same events: the records projector (`projector.apply`, which writes
interaction, note and feedback rows) and the session metrics (`session_metrics`, which
counts). Every rule they share is here, once, so a response is linked to the same prompt
and a feedback event counts the same way in both:

- A response answers the prompt it names in `prompt_seq` when that seq is one of the
  remembered prompts, no prompt when it names anything else, and the latest prompt
  before it when it names none (absent or null).
- The hub remembers the latest `PROMPTS_KEPT` prompts; a response naming an older one is
  linked to none (the projector's state stays bounded, and the metrics agree with it).
- Prompt to response time is measured between the two events' log times, never below 0;
  a response's row reports the client's `duration_seconds` instead when it sent one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..events import iso
from ..store import StoredEvent

PROMPTS_KEPT = 500
RESPONSE_METHODS = ("text", "voice", "skip")
FEEDBACK_TYPES = ("like", "dislike", "regenerate")


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def remember_prompt(asked: dict[str, str], event: StoredEvent) -> None:
    """Record a prompt's log time in `asked` (prompt seq as text -> ISO time: JSON-ready),
    forgetting the oldest beyond `PROMPTS_KEPT`."""
    asked[str(event.seq)] = iso(event.ts)
    if len(asked) > PROMPTS_KEPT:
        del asked[min(asked, key=int)]


def answered_prompt(data: dict[str, Any], last_prompt_seq: int | None, asked: dict[str, str]) -> int | None:
    """The seq of the prompt a response (its `data`) answers, or None."""
    named = int_or_none(data.get("prompt_seq"))
    if named is None:
        return last_prompt_seq
    return named if str(named) in asked else None


def response_seconds(asked: dict[str, str], prompt_seq: int | None, answered_at: datetime) -> float | None:
    """Seconds from the prompt to its response, by the log's times; None without a prompt."""
    if prompt_seq is None or str(prompt_seq) not in asked:
        return None
    asked_at = datetime.fromisoformat(asked[str(prompt_seq)].replace("Z", "+00:00"))
    return max(0.0, (answered_at - asked_at).total_seconds())


def response_duration(data: dict[str, Any], seconds: float | None) -> int | None:
    """A response row's `duration_seconds`: the client's figure, else the measured one."""
    sent = int_or_none(data.get("duration_seconds"))
    if sent is not None:
        return sent
    return None if seconds is None else int(seconds)


def response_method(data: dict[str, Any]) -> str:
    method = data.get("method")
    return method if method in RESPONSE_METHODS else "text"


def responder(event: StoredEvent) -> str | None:
    """The user a response counts for (engagement), or None."""
    user = (event.actor or {}).get("user_id")
    return user if isinstance(user, str) and user else None


@dataclass(frozen=True)
class Feedback:
    user_id: str
    message_seq: int
    feedback_type: str
    comment: str | None


def feedback_of(event: StoredEvent) -> Feedback | None:
    """A feedback event as a record, or None when it cannot be one (then it counts nowhere)."""
    data = event.data or {}
    user = responder(event)
    message_seq = int_or_none(data.get("message_seq"))
    kind = data.get("feedback_type")
    if user is None or message_seq is None or kind not in FEEDBACK_TYPES:
        return None
    return Feedback(user, message_seq, kind, text_or_none(data.get("comment")))


def technique_of(event: StoredEvent) -> str | None:
    technique = (event.data or {}).get("technique")
    return technique if isinstance(technique, str) and technique else None
