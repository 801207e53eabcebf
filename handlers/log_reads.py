"""The HTTP API's one reader of a session's log: pages metered before they are read
(`http_limits.charge_log_read`), and the metrics folded from the log, kept per head.

The log up to a seq never changes (events are only appended; a trim moves
`retained_from`), so the metrics of a session whose head has not moved since the last
request are answered without reading it again: a dashboard polling an idle or ended
session's metrics costs nothing, and pays nothing of its budget.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from weakref import WeakKeyDictionary

from hub.node import Hub
from hub.records.session_metrics import compute_metrics
from hub.store import SessionRecord, StoredEvent

from .http_limits import charge_log_read

MAX_REPLAY = 50_000  # events one request reads at most
_CACHED_SESSIONS = 256


async def read_all(
    hub: Hub, record: SessionRecord, after: int = 0, limit: int = MAX_REPLAY
) -> list[StoredEvent]:
    # Metered before a row is read: a replay beyond the caller's budget is a 429, not work.
    charge_log_read(min(limit, record.head_seq - max(after, record.retained_from - 1)))
    events: list[StoredEvent] = []
    page = hub.settings.replay_page
    while len(events) < limit:
        rows = await hub.store.read_events(record.pk, after, min(page, limit - len(events)))
        events.extend(rows)
        if len(rows) < page:
            break
        after = rows[-1].seq
    return events


# Per hub (tests run several in one process, on databases whose ids overlap):
# (session pk, retained_from) -> (the last seq folded, the metrics), least recent first.
_FOLDED: WeakKeyDictionary[Hub, OrderedDict[tuple[int, int], tuple[int, dict[str, Any]]]] = (
    WeakKeyDictionary()
)


async def session_metrics(
    hub: Hub, record: SessionRecord, whole_log: list[StoredEvent] | None = None
) -> dict[str, Any]:
    """The metrics of the session's log (`whole_log`: the log already read whole, from its
    start, by the caller); a fresh dict the caller may add to."""
    folded = _FOLDED.setdefault(hub, OrderedDict())
    key = (record.pk, record.retained_from)
    found = folded.get(key)
    if found is not None and found[0] >= record.head_seq:
        folded.move_to_end(key)
        return dict(found[1])
    events = whole_log if whole_log is not None else await read_all(hub, record)
    metrics = compute_metrics(events)
    folded[key] = (events[-1].seq if events else 0, metrics)
    folded.move_to_end(key)
    while len(folded) > _CACHED_SESSIONS:
        folded.popitem(last=False)
    return dict(metrics)
