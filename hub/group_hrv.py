"""The group's HRV: one fold over `hrv_update` samples, pure, shared by every reader.

The live `hrv_summary` events (hub/hrv_summaries.py), the session content's metrics and
seed 003's `average_hrv_improvement` all come from `GroupHrv`, so they always agree.

Per participant the fold keeps the first reading of the session (the baseline) and the
latest one. A participant's improvement is the `improvement` its latest sample carries
when the device computed one, else the latest reading against the baseline:
`(latest - first) / first * 100`. The group's figures are over every participant who
has reported in the session:

- `participants_reporting`: how many;
- `average_hrv`, `min_hrv`, `max_hrv`: of their latest readings (ms RMSSD);
- `average_hrv_improvement`: the mean of their improvements (percent).

Milestones: when `average_hrv_improvement` first reaches 5, 10 and 15 % (the rows of
seed 003's quality table), one `hrv_milestone` each, per session.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

MILESTONE_THRESHOLDS = (5, 10, 15)  # percent; seed 003's quality table rows


@dataclass
class _Reader:
    first: float
    latest: float
    reported: float | None = None  # the device's own improvement in the latest sample

    @property
    def improvement(self) -> float | None:
        if self.reported is not None:
            return self.reported
        if self.first > 0:
            return (self.latest - self.first) / self.first * 100
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass
class GroupHrv:
    readers: dict[str, _Reader] = field(default_factory=dict)
    samples: int = 0

    def add(self, participant: str, data: Mapping[str, Any]) -> bool:
        """Fold one `hrv_update` (its sender and data); False when it holds no reading."""
        hrv = _number(data.get("hrv"))
        if hrv is None:
            return False
        reported = _number(data.get("improvement"))
        reader = self.readers.get(participant)
        if reader is None:
            self.readers[participant] = _Reader(hrv, hrv, reported)
        else:
            reader.latest, reader.reported = hrv, reported
        self.samples += 1
        return True

    def add_event(self, event_type: str, actor: Mapping[str, Any] | None, data: Mapping[str, Any]) -> bool:
        if event_type != "hrv_update" or not actor or not actor.get("user_id"):
            return False
        return self.add(str(actor["user_id"]), data)

    def figures(self) -> dict[str, Any]:
        """The group's figures now (None where nobody has reported)."""
        latest = [r.latest for r in self.readers.values()]
        improvements = [i for r in self.readers.values() if (i := r.improvement) is not None]
        return {
            "participants_reporting": len(latest),
            "average_hrv": round(fmean(latest), 2) if latest else None,
            "average_hrv_improvement": round(fmean(improvements), 2) if improvements else None,
            "min_hrv": round(min(latest), 2) if latest else None,
            "max_hrv": round(max(latest), 2) if latest else None,
        }


def fold(events: Iterable[Any]) -> GroupHrv:
    """The fold over stored events (anything with `type`, `actor`, `data`), in seq order."""
    group = GroupHrv()
    for event in events:
        group.add_event(event.type, event.actor, event.data or {})
    return group


def milestones_reached(improvement: float | None, passed: Iterable[int]) -> list[int]:
    """Thresholds `improvement` has reached that are not in `passed`, lowest first."""
    if improvement is None:
        return []
    done = set(passed)
    return [t for t in MILESTONE_THRESHOLDS if improvement >= t and t not in done]


def milestone_data(threshold: int, figures: Mapping[str, Any]) -> dict[str, Any]:
    """The data of the hub's `hrv_milestone` for the group crossing `threshold`."""
    return {
        "improvement": figures["average_hrv_improvement"],
        "threshold": threshold,
        "scope": "group",
        "participants_reporting": figures["participants_reporting"],
        "message": f"The group's average HRV improvement passed {threshold}%",
    }
