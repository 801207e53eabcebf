"""Exactly once, in order: what to do with each event that arrives (the rule of
docs/protocol.md, "Views"; the browser client's `SeqTracker` follows the same rule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Verdict = Literal["deliver", "duplicate", "gap"]


def verdict(last: int | None, message: Mapping[str, Any]) -> Verdict:
    """`last`: the seq up to which this member holds its view (None: nothing yet).

    A member may receive only part of the log (its audience's view); each event names the
    previous seq of that view in `prev_seq`. Without it every event is in the view.
    """
    seq: int = message["seq"]
    prev = message.get("prev_seq")
    prev_seq = prev if isinstance(prev, int) and not isinstance(prev, bool) else seq - 1
    if last is None:
        return "deliver"
    if seq <= last:
        return "duplicate"
    if prev_seq > last:
        return "gap"  # an event of the view was missed: resume from `last`
    return "deliver"
