"""Deterministic summaries and progress (seeds 000 and 002).

No external model: a summary is rendered from the log-derived facts of the projector
(`hub.records.projector.facts`) and the session's record fields, so the same log and the
same record always give the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SummaryContext:
    """The session's record fields a summary speaks about, read when it is written."""

    title: str
    intention: str | None = None
    success_indicators: tuple[str, ...] = ()
    completion_indicators: tuple[str, ...] = ()
    met_indicators: tuple[str, ...] = ()
    next_session_suggestion: str | None = None
    artifacts: int = 0
    topics: tuple[str, ...] = ()

    @classmethod
    def from_attributes(
        cls, title: str, attributes: dict[str, Any], artifacts: int = 0, topics: tuple[str, ...] = ()
    ) -> SummaryContext:
        def strings(name: str) -> tuple[str, ...]:
            value = attributes.get(name)
            return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

        intention = attributes.get("intention")
        suggestion = attributes.get("next_session_suggestion")
        return cls(
            title=title,
            intention=intention if isinstance(intention, str) else None,
            success_indicators=strings("success_indicators"),
            completion_indicators=strings("completion_indicators"),
            met_indicators=strings("met_indicators"),
            next_session_suggestion=suggestion if isinstance(suggestion, str) else None,
            artifacts=artifacts,
            topics=topics,
        )


def indicator_checks(indicators: tuple[str, ...], met: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"indicator": text, "met": text in met} for text in indicators]


def next_steps(facts: dict[str, Any], context: SummaryContext, kind: str) -> list[str]:
    steps: list[str] = []
    if context.next_session_suggestion:
        steps.append(context.next_session_suggestion)
    for indicator in context.success_indicators:
        if indicator not in context.met_indicators:
            steps.append(f"Work towards: {indicator}")
    for followup in facts.get("followups", []):
        steps.append(f"Follow up: {followup}")
    if not facts.get("responses"):
        steps.append("Invite the participant to share a first response")
    completion = context.completion_indicators
    if kind == "final" and completion and all(c in context.met_indicators for c in completion):
        steps.append("The goal is complete; no further session is needed")
    if not steps:
        steps.append("Continue exploring the themes that emerged")
    return steps[:8]


def render(
    facts: dict[str, Any], context: SummaryContext, kind: str, duration_seconds: int | None = None
) -> tuple[str, str, dict[str, Any]]:
    """(summary_text, next_plan_text, outline) in seed 000's outline."""
    minutes = round(duration_seconds / 60) if duration_seconds is not None else None
    topics = list(context.topics) or list(facts.get("topics_discussed", []))
    accomplished = [
        c["indicator"] for c in indicator_checks(context.success_indicators, context.met_indicators)
    ]
    accomplished = [a for a in accomplished if a in context.met_indicators]
    if facts.get("achievements"):
        accomplished.extend(facts["achievements"][:5])
    steps = next_steps(facts, context, kind)
    themes = list(facts.get("themes", []))
    covered = {
        "topics": len(topics),
        "topic_names": topics,
        "interactions": facts.get("interactions", 0),
        "responses": facts.get("responses", 0),
        "artifacts": context.artifacts,
        "notes": facts.get("notes", 0),
    }
    outline: dict[str, Any] = {
        "kind": kind,
        "session": context.title,
        "duration_minutes": minutes,
        "goal": context.intention,
        "covered": covered,
        "key_accomplishments": accomplished,
        "themes": themes,
        "techniques": list(facts.get("techniques", [])),
        "next_steps": steps,
    }
    lines = [
        f"Session: {context.title}",
        f"Duration: {minutes} minutes" if minutes is not None else "Duration: in progress",
        "",
        f"Goal: {context.intention or 'not set'}",
        "",
        "What was covered:",
        f"- {len(topics)} topics explored" + (f" ({', '.join(topics)})" if topics else ""),
        f"- {covered['interactions']} interactions",
        f"- {context.artifacts} artifacts created",
        "",
        "Key accomplishments:",
        *([f"- {a}" for a in accomplished] or ["- none recorded yet"]),
        "",
        "Themes that emerged:",
        *([f"- {t}" for t in themes] or ["- none yet"]),
        "",
        "Next steps:",
        *[f"- {s}" for s in steps],
    ]
    next_plan = "Next, we're focusing on: " + "; ".join(steps)
    return "\n".join(lines), next_plan, outline
