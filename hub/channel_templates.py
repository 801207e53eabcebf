"""Renders the multi-channel summary (email, web article, social posts) from Jinja2
templates: the hub's own in `hub/templates/channel_summary/`, each overridable by a file
of the same name in the operator's `HUB_TEMPLATES_DIR/channel_summary/`.

HTML templates are autoescaped (session titles, achievements and participants' comments
are text, never markup); text templates are not. Rendering is pure: the same facts always
give the same content.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

BUILTIN = Path(__file__).parent / "templates"
CHANNELS = ("email", "web", "social")
TWEET_MAX = 280


def _one_line(text: str) -> str:
    return " ".join(text.split())


def channel_context(
    *,
    title: str,
    session_id: str,
    participants: int,
    duration_seconds: float | None,
    techniques: list[str],
    improvement: float | None,
    instructor: str | None = None,
    content: str = "",
    achievements: list[str] | None = None,
    feedback: list[dict[str, str]] | None = None,
    started_at: str | None = None,
) -> dict[str, Any]:
    """What every template sees: the session's facts, and the lines every channel lists."""
    minutes = max(1, round((duration_seconds or 0) / 60))
    facts = [f"{participants} participant{'s' if participants != 1 else ''}", f"{minutes} minutes"]
    if techniques:
        facts.append("Techniques: " + ", ".join(techniques))
    if improvement is not None:
        facts.append(f"Average HRV improvement: {improvement:g}%")
    if instructor:
        facts.append(f"Instructor: {instructor}")
    return {
        "title": title,
        "session_id": session_id,
        "slug": f"{session_id}-summary".lower(),
        "content": content,
        "participants": participants,
        "duration_seconds": duration_seconds,
        "techniques": techniques,
        "improvement": improvement,
        "instructor": instructor,
        "achievements": (achievements or [])[:20],
        "feedback": (feedback or [])[:5],
        "facts": facts,
        "started_at": started_at,
    }


def hashtag(text: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", text)
    return "#" + "".join(w[:1].upper() + w[1:] for w in words) if words else ""


class ChannelRenderer:
    def __init__(self, override_dir: str = ""):
        loaders = [FileSystemLoader(Path(override_dir))] if override_dir else []
        self.env = Environment(
            loader=ChoiceLoader([*loaders, FileSystemLoader(BUILTIN)]),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=False,
        )

    def _render(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(f"channel_summary/{name}").render(context).strip()

    def render(self, facts: dict[str, Any], channels: tuple[str, ...] = CHANNELS) -> dict[str, Any]:
        """The channels for `facts` (a `channel_context`)."""
        tags = ["#breathwork", *[t for t in (hashtag(x) for x in facts["techniques"][:2]) if t]]
        twitter = _one_line(self._render("social_twitter.txt", facts))
        suffix = " " + " ".join(tags)
        if len(twitter) + len(suffix) > TWEET_MAX:
            twitter = twitter[: TWEET_MAX - len(suffix) - 3].rstrip() + "..."
        rendered = {
            "email": {
                "subject": _one_line(self._render("email_subject.txt", facts)),
                "html": self._render("email.html", facts),
                "text": self._render("email.txt", facts),
            },
            "web": {
                "title": facts["title"],
                "content": self._render("web.html", facts),
                "slug": facts["slug"],
                "seo_description": _one_line(self._render("web_seo.txt", facts))[:160],
            },
            "social": {
                "twitter": {"content": twitter + suffix, "hashtags": tags},
                "linkedin": {
                    "content": _one_line(self._render("social_linkedin.txt", facts)),
                    "hashtags": ["#wellness", *tags[1:]],
                },
                "facebook": {
                    "content": _one_line(self._render("social_facebook.txt", facts)),
                    "hashtags": ["#mindfulness", *tags[1:]],
                },
            },
        }
        return {channel: rendered[channel] for channel in channels}
