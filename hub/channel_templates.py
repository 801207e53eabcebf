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
TWEET_MAX = 280


def _one_line(text: str) -> str:
    return " ".join(text.split())


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

    def render(self, facts: dict[str, Any]) -> dict[str, Any]:
        """Every channel for `facts` (see `hub.end_summary.summary_facts`)."""
        tags = ["#breathwork", *[t for t in (hashtag(x) for x in facts["techniques"][:2]) if t]]
        twitter = _one_line(self._render("social_twitter.txt", facts))
        suffix = " " + " ".join(tags)
        if len(twitter) + len(suffix) > TWEET_MAX:
            twitter = twitter[: TWEET_MAX - len(suffix) - 3].rstrip() + "..."
        return {
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
