"""Seed 003's multi-channel session summary: email, web and social content rendered from
validated session data, and the quality score of its HRV table. Pure and deterministic:
the same data always renders the same content."""

from __future__ import annotations

import html
from typing import Any

CHANNELS = ("email", "web", "social")

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


def _minutes(seconds: int) -> int:
    return max(1, round(seconds / 60))


def _facts(data: dict[str, Any]) -> list[str]:
    facts = [
        f"{data['participant_count']} participants",
        f"{_minutes(data['session_duration'])} minutes",
        "Techniques: " + ", ".join(data["breathing_techniques"]),
    ]
    if data.get("average_hrv_improvement") is not None:
        facts.append(f"Average HRV improvement: {data['average_hrv_improvement']:g}%")
    if data.get("instructor_name"):
        facts.append(f"Instructor: {data['instructor_name']}")
    return facts


def _feedback(data: dict[str, Any]) -> list[tuple[str, str]]:
    items = (data.get("participant_feedback") or {}).get("items") or []
    return [
        (str(i.get("participant_name", "A participant")), str(i.get("comment", "")))
        for i in items
        if isinstance(i, dict) and i.get("comment")
    ][:5]


def email(data: dict[str, Any]) -> dict[str, str]:
    title, facts = data["title"], _facts(data)
    achievements = list(data.get("key_achievements") or [])
    text_lines = [f"Session Summary: {title}", "", *[f"- {f}" for f in facts]]
    if achievements:
        text_lines += ["", "Key achievements:", *[f"- {a}" for a in achievements]]
    for name, comment in _feedback(data):
        text_lines.append(f'"{comment}" - {name}')
    esc = html.escape
    body = "".join(f"<li>{esc(f)}</li>" for f in facts)
    wins = "".join(f"<li>{esc(a)}</li>" for a in achievements)
    quotes = "".join(f"<blockquote>{esc(c)} &mdash; {esc(n)}</blockquote>" for n, c in _feedback(data))
    page = (
        f"<html><body><h1>{esc(title)}</h1><p>{esc(data.get('content') or '')}</p><ul>{body}</ul>"
        + (f"<h2>Key achievements</h2><ul>{wins}</ul>" if wins else "")
        + quotes
        + "</body></html>"
    )
    return {"subject": f"Session Summary: {title}", "html": page, "text": "\n".join(text_lines)}


def web(data: dict[str, Any]) -> dict[str, str]:
    esc = html.escape
    facts = "".join(f"<li>{esc(f)}</li>" for f in _facts(data))
    article = (
        f"<article><h1>{esc(data['title'])}</h1><p>{esc(data.get('content') or '')}</p>"
        f"<ul>{facts}</ul></article>"
    )
    techniques = ", ".join(data["breathing_techniques"][:3])
    seo = f"Session with {data['participant_count']} participants practising {techniques}."
    return {
        "title": data["title"],
        "content": article,
        "slug": f"{data['session_id']}-summary".lower(),
        "seo_description": seo[:160],
    }


def social(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    title, count = data["title"], data["participant_count"]
    hrv = data.get("average_hrv_improvement")
    gain = f" with an average HRV improvement of {hrv:g}%" if hrv is not None else ""
    line = f"{count} people breathed together in {title}{gain}."
    twitter = (line if len(line) <= 250 else line[:247] + "...") + " #breathwork"
    return {
        "twitter": {"content": twitter, "hashtags": ["#breathwork"]},
        "linkedin": {
            "content": f"{line} Techniques: {', '.join(data['breathing_techniques'])}.",
            "hashtags": ["#wellness"],
        },
        "facebook": {"content": f"Thank you for joining {title}! {line}", "hashtags": ["#mindfulness"]},
    }


def render(data: dict[str, Any], channels: list[str]) -> dict[str, Any]:
    renderers = {"email": email, "web": web, "social": social}
    return {channel: renderers[channel](data) for channel in channels}
