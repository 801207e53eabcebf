"""HTTP rate limits (handlers/http_limits.py, docs/auth.md "Limits"): the replay hammer,
writes per user and per account, the replay's cursor, and the 429s in /openapi.json.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.attack_tools import Neighbour, cpu_seconds
from tests.auth_support import auth, make_session, token, token_hub
from tests.support import ROOT, HubProcess

pytestmark = pytest.mark.timeout(90)

# Budgets small enough to reach with a test client (the defaults are in docs/auth.md),
# and the bound docs/operations.md gives a neighbour's worst event delivery meanwhile.
RATE, BURST, LOG_COST = 20, 60, 5  # HUB_HTTP_RATE_LIMIT, _BURST, HUB_HTTP_EXPENSIVE_COST
ACCOUNT_RATE, ACCOUNT_BURST = 20, 80  # HUB_HTTP_ACCOUNT_RATE_LIMIT, _BURST
NEIGHBOUR_WORST_SECONDS = 1.0
LOG_EVENTS = 9000
HAMMER = "/api/v2/session/{}/content?include_replay=true&include_metrics=true"

# The log of a long session, written as the append function would (seq after the head).
FILL = """
WITH s AS (SELECT id, head_seq FROM hub_sessions WHERE account_id = $1 AND session_id = $2)
INSERT INTO hub_events (session_pk, seq, type, ts, actor, data)
SELECT s.id, s.head_seq + g, 'hrv_update', now(),
       '{"user_id": "p1", "name": "P1", "role": "participant"}',
       jsonb_build_object('hrv', 40 + g % 20, 'improvement', g % 15, 'coherence', 0.8)
FROM s, generate_series(1, $3::int) AS g
"""
HEAD = "UPDATE hub_sessions SET head_seq = head_seq + $3 WHERE account_id = $1 AND session_id = $2"


@pytest.fixture(scope="module")
def hub(pg_base: str) -> Iterator[tuple[HubProcess, str]]:
    env = {
        "HUB_HTTP_RATE_LIMIT": str(RATE),
        "HUB_HTTP_RATE_BURST": str(BURST),
        "HUB_HTTP_EXPENSIVE_COST": str(LOG_COST),
        "HUB_HTTP_ACCOUNT_RATE_LIMIT": str(ACCOUNT_RATE),
        "HUB_HTTP_ACCOUNT_RATE_BURST": str(ACCOUNT_BURST),
    }
    with token_hub(pg_base, **env) as made:
        yield made


async def long_session(hub: HubProcess, dsn: str, account: str, events: int) -> str:
    session_id = f"long-{uuid.uuid4().hex[:8]}"
    make_session(hub, account, session_id)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(FILL, account, session_id, events)
            await conn.execute(HEAD, account, session_id, events)
    finally:
        await conn.close()
    return session_id


async def test_the_replay_hammer_gets_429_with_retry_after_and_the_neighbour_keeps_its_latency(hub):
    process, dsn = hub
    session_id = await long_session(process, dsn, "dash", LOG_EVENTS)
    make_session(process, "dash", "nb-http")
    neighbour = await Neighbour.join(process, "nb-http", token=token("dash", "nb"))
    await neighbour.probe(0.3)
    headers = auth(token("dash", "dashboard", "observer"))
    statuses: list[int] = []
    waits: list[str] = []
    seconds = 4.0
    deadline = time.monotonic() + seconds

    async def loop(client: httpx.AsyncClient) -> None:
        # A dashboard that retries when told to: 8 of them, as fast as the hub lets them.
        while time.monotonic() < deadline:
            response = await client.get(HAMMER.format(session_id))
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "rate_limited"
                waits.append(response.headers["Retry-After"])
                await asyncio.sleep(min(int(response.headers["Retry-After"]), deadline - time.monotonic()))

    cpu_before = cpu_seconds(process)
    started = time.monotonic()
    probing = asyncio.create_task(neighbour.probe(seconds))
    async with httpx.AsyncClient(base_url=process.base_url, headers=headers, timeout=30) as client:
        await asyncio.gather(*(loop(client) for _ in range(8)))
    elapsed = time.monotonic() - started
    await probing
    cpu = cpu_seconds(process) - cpu_before
    await neighbour.close()

    # A 9,000-event replay costs 1 + 5 x 9 units: the budget pays for a few, not 8 loops.
    cost = 1 + math.ceil(LOG_COST * (LOG_EVENTS + 1) / 1000)
    served = statuses.count(200)
    assert 1 <= served <= (BURST + RATE * elapsed) / cost + 1, (served, statuses)
    assert statuses.count(429) >= 8 and set(statuses) == {200, 429}
    longest = math.ceil(cost / min(RATE, ACCOUNT_RATE))  # a whole replay's cost to refill
    assert all(wait.isdigit() and 1 <= int(wait) <= longest for wait in waits), waits
    # The hub did a few replays' work, not 4 s of them (it used a whole core before).
    assert cpu < 0.6 * elapsed, f"hub used {cpu:.2f}s of CPU in {elapsed:.1f}s"
    events, health = neighbour.worst()
    assert events < NEIGHBOUR_WORST_SECONDS and health < NEIGHBOUR_WORST_SECONDS, neighbour.summary()


async def _writes(hub: HubProcess, account: str, user: str, count: int) -> list[httpx.Response]:
    """`count` session creations at once (invalid ones: a write is metered whatever it
    answers), in the order the hub answered them."""
    headers = auth(token(account, user, "instructor"))
    answered: list[httpx.Response] = []

    async def post(client: httpx.AsyncClient) -> None:
        answered.append(await client.post("/api/v2/sessions/create", json={"title": ""}))

    async with httpx.AsyncClient(base_url=hub.base_url, headers=headers, timeout=30) as client:
        await asyncio.gather(*(post(client) for _ in range(count)))
    return answered


async def test_writes_are_limited_per_user_and_cheap_reads_are_not(hub):
    process, _ = hub
    session_id = f"w-{uuid.uuid4().hex[:8]}"
    make_session(process, "writers", session_id)
    started = time.monotonic()
    answers = await _writes(process, "writers", "eager", 2 * BURST)
    elapsed = time.monotonic() - started
    codes = [r.status_code for r in answers]
    assert BURST <= codes.count(422) <= BURST + RATE * elapsed * 1.1, (codes.count(422), elapsed)
    assert codes.count(429) + codes.count(422) == 2 * BURST
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["details"]["limit"] == "HUB_HTTP_RATE_LIMIT"
    headers = auth(token("writers", "eager", "instructor"))
    async with httpx.AsyncClient(base_url=process.base_url, headers=headers) as client:
        assert (await client.get(f"/api/v2/session/{session_id}")).status_code == 200  # not metered
    # Another user of the account has a budget of its own.
    assert {r.status_code for r in await _writes(process, "writers", "calm", 5)} == {422}


async def test_an_accounts_users_together_are_limited(hub):
    process, _ = hub
    started = time.monotonic()
    answers = await asyncio.gather(*(_writes(process, "crowd", f"u{i}", 50) for i in range(3)))
    elapsed = time.monotonic() - started
    limited = [r for batch in answers for r in batch if r.status_code == 429]
    served = sum(r.status_code == 422 for batch in answers for r in batch)
    # Each user is within its own budget (50 < 60); the three together are not.
    assert limited and {r.json()["error"]["details"]["limit"] for r in limited} == {
        "HUB_HTTP_ACCOUNT_RATE_LIMIT"
    }
    assert ACCOUNT_BURST <= served <= ACCOUNT_BURST + ACCOUNT_RATE * elapsed * 1.1, (served, elapsed)
    assert {r.status_code for r in await _writes(process, "elsewhere", "u0", 5)} == {422}


async def test_a_dashboard_follows_the_replay_cursor_cheaply(hub):
    process, dsn = hub
    session_id = await long_session(process, dsn, "pager", 2500)
    headers = auth(token("pager", "dash", "observer"))
    path = f"/api/v2/session/{session_id}/content?include_replay=true&replay_limit=1000"
    seqs: list[int] = []
    async with httpx.AsyncClient(base_url=process.base_url, headers=headers) as client:
        since: Any = 0
        while since is not None:
            replay = (await client.get(f"{path}&replay_since={since}")).json()["replay"]
            assert replay["message_count"] == len(replay["messages"]) <= 1000
            seqs.extend(m["seq"] for m in replay["messages"])
            since = replay["next_since"]
        assert seqs == list(range(1, 2502))  # session_started, then the fill
        # The whole log at once, with its metrics: 1 + 13 units (the pages cost 3 x 6).
        whole = await client.get(
            f"/api/v2/session/{session_id}/content?include_replay=true&include_metrics=true"
        )
        assert whole.status_code == 200, whole.text
        assert (
            whole.json()["replay"]["message_count"] == 2501 and whole.json()["replay"]["next_since"] is None
        )
        # Polling for what is new reads nothing old, and the metrics of a log whose head
        # has not moved are not folded again: a unit a poll, 20 polls within the budget (60).
        poll = f"{path}&replay_since={seqs[-1]}&include_metrics=true"
        polls = [await client.get(poll) for _ in range(20)]
        assert {r.status_code for r in polls} == {200}, polls[-1].text
        empty = {"message_count": 0, "messages": [], "next_since": None}
        assert all(r.json()["replay"] == empty for r in polls)
        assert {r.json()["metrics"]["message_count"] for r in polls} == {2501}


async def test_the_openapi_document_lists_429_where_it_applies(hub):
    process, _ = hub
    async with httpx.AsyncClient(base_url=process.base_url) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    content = paths["/api/v2/session/{session_id}/content"]["get"]["responses"]
    assert "Retry-After" in content["429"]["headers"]
    assert "429" in paths["/api/v2/sessions/create"]["post"]["responses"]
    assert "429" not in paths["/api/v2/session/{session_id}"]["get"]["responses"]


def test_every_expensive_read_is_documented_and_every_log_reader_is_one():
    from handlers.api import operation_of
    from handlers.app import create_app
    from hub.config import Settings

    table = (ROOT / "docs" / "auth.md").read_text().split("What a request under `/api/v2` costs")[1]
    expensive = []
    for route in create_app(Settings(dev_mode=True)).routes:
        described = operation_of(getattr(route, "endpoint", None))
        if described is None or not described.expensive or "GET" not in route.methods:
            continue
        expensive.append(route.path)
        last = route.path.rsplit("/", 1)[-1]
        path = re.sub(r"\{[^}]+\}", "{id}", route.path.removeprefix("/api/v2"))
        assert path in table or ("{" in path and f"`{last}`" in table), route.path
    assert len(expensive) >= 15, expensive
    # Every endpoint that reads the log reads it through the metered reader.
    for module in ("sessions", "records/progress", "records/content", "records/session_record"):
        source = (ROOT / "handlers" / f"{module}.py").read_text()
        assert "read_events(" not in source and "compute_metrics(" not in source, module
