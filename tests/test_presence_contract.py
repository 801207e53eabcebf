"""The presence contract (hub/presence.py), run against the in-memory and the Redis presence.

"Processes" are separate presence objects; in memory they are one object (a single
process), in Redis separate clients on one key prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis

from hub.presence import ACCOUNT_SLOTS
from hub.presence_memory import MemoryPresence
from hub.presence_redis import RedisPresence

# A stuck test fails fast instead of eating the suite budget.
pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def processes(request: Any) -> AsyncIterator[Callable[..., Any]]:
    made: list[Any] = []
    shared = MemoryPresence()
    cluster = request.param == "redis-cluster"
    url = (
        request.getfixturevalue("redis_cluster_url" if cluster else "redis_base")
        if request.param != "memory"
        else ""
    )

    def make(node: str = "n", ttl: float = 15.0, **options: Any) -> Any:
        if request.param == "memory":
            return shared
        prefix = request.getfixturevalue("redis_prefix")
        presence = RedisPresence(url, prefix=prefix, node_id=node, ttl=ttl, cluster=cluster, **options)
        made.append(presence)
        return presence

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for presence in made:
        await presence.close()


async def claim(presence: Any, account: str, user: str, conn_id: str, limit: int) -> bool:
    """A slot in one pool: True when admitted."""
    return await presence.claim_slots(account, conn_id, {user: limit}) is None


async def release(presence: Any, account: str, user: str, conn_id: str) -> None:
    await presence.release_slots(account, [user], conn_id)


def info(user: str, role: str = "participant") -> dict[str, Any]:
    return {"participant_id": user, "name": user.title(), "role": role, "joined_at": "t"}


async def test_add_and_remove_answer_true_once_per_member(processes):
    a, b = processes("a"), processes("b")
    assert await a.add("1", "bob", "c1", info("bob")) is True
    assert await b.add("1", "bob", "c2", info("bob")) is False
    assert await a.connection_count("1", "bob") == 2
    assert await b.remove("1", "bob", "c2") is False
    assert await b.remove("1", "bob", "c2") is False  # twice: nothing more to remove
    assert await a.remove("1", "bob", "c1") is True
    assert await a.connection_count("1", "bob") == 0
    assert await b.members("1") == {}


async def test_members_agree_across_processes(processes):
    a, b = processes("a"), processes("b")
    await a.add("1", "bob", "c1", info("bob"))
    await b.add("1", "sarah", "c2", info("sarah", "instructor"))
    await b.add("2", "eve", "c3", info("eve"))
    expected = {"bob": info("bob"), "sarah": info("sarah", "instructor")}
    assert await a.members("1") == expected
    assert await b.members("1") == expected
    assert list(await a.members("2")) == ["eve"]


async def test_racing_joins_and_leaves_yield_one_true_each(processes):
    a, b = processes("a"), processes("b")
    adds = [(a if i % 2 else b).add("1", "bob", f"c{i}", info("bob")) for i in range(20)]
    assert sum(await asyncio.gather(*adds)) == 1
    removes = [(a if i % 2 else b).remove("1", "bob", f"c{i}") for i in range(20)]
    assert sum(await asyncio.gather(*removes)) == 1
    assert await a.members("1") == {}


# Only where processes can die apart from each other: one process never outlives itself.
@pytest.mark.parametrize("processes", ["redis", "redis-cluster"], indirect=True)
async def test_entries_of_a_process_that_stops_refreshing_are_reaped_once(processes):
    dead, live, other = processes("dead", ttl=0.6), processes("live", ttl=0.6), processes("o", ttl=0.6)
    await dead.add("1", "bob", "c1", info("bob"))
    await dead.add("1", "amy", "c2", info("amy"))
    await live.add("1", "amy", "c3", info("amy"))  # amy is still here through `live`
    await live.add("1", "sam", "c4", info("sam"))
    for _ in range(6):  # `live` refreshes, `dead` does not
        await asyncio.sleep(0.15)
        await live.refresh()
    reaped = await asyncio.gather(live.reap("1", 100), other.reap("1", 100), live.reap("1", 100))
    gone = [(change.info["participant_id"], change.present) for batch in reaped for change in batch]
    assert gone == [("bob", False)]
    assert sorted(await other.members("1")) == ["amy", "sam"]
    assert await other.connection_count("1", "amy") == 1


async def test_refresh_keeps_a_quiet_process_present(processes):
    a = processes("a", ttl=0.45)
    await a.add("1", "bob", "c1", info("bob"))
    for _ in range(5):
        await asyncio.sleep(0.15)
        await a.refresh()
        assert await a.reap("1", 100) == []
    assert list(await a.members("1")) == ["bob"]


async def test_a_join_waiting_for_redis_during_a_refresh_still_answers_first(processes):
    """A refresh that ran while a join waited for a connection (its entry recorded, not
    sent) must leave the registering to the join: had the refresh registered the member,
    the join would answer not-first and the new member's participant_joined be lost."""
    a = processes("a", pool_size=1)
    for i in range(5):
        # `members` holds the one connection; the join waits for it; the refresh goes
        # first on its own connection.
        joining = a.join("1", f"m{i}", f"c{i}", info(f"m{i}"), None)
        _, admission, _ = await asyncio.gather(a.members("1"), joining, a.refresh())
        assert admission.first, f"m{i}'s join was taken over by the refresh"
    assert await a.refresh() == []


async def test_an_entry_removed_during_a_refresh_stays_removed(processes):
    a, b = processes("a"), processes("b")
    for i in range(10):
        assert await a.add("1", "bob", f"c{i}", info("bob")) is True
        _, gone = await asyncio.gather(a.refresh(), a.remove("1", "bob", f"c{i}"))
        assert gone is True
        await a.settle("1", "bob")
        assert await b.members("1") == {}, "the refresh wrote a removed entry back"
        assert await b.connection_count("1", "bob") == 0


async def test_a_member_back_during_its_departure_returns_through_settle(processes):
    a, b = processes("a"), processes("b")
    assert await a.add("1", "bob", "c1", info("bob")) is True
    assert await a.remove("1", "bob", "c1") is True  # departing: its participant_left is written
    assert await b.add("1", "bob", "c2", info("bob")) is False  # its return waits for the left
    assert list(await a.members("1")) == ["bob"]
    assert await a.settle("1", "bob") == info("bob")  # left written: now write the return
    assert await b.settle("1", "bob") is None  # settled once
    # Back and gone again before the departure is settled: nothing more to write.
    assert await b.remove("1", "bob", "c2") is True
    assert await a.add("1", "bob", "c3", info("bob")) is False
    assert await a.remove("1", "bob", "c3") is False
    assert await b.settle("1", "bob") is None
    assert await a.members("1") == {}
    assert await a.add("1", "bob", "c4", info("bob")) is True


async def test_many_calls_at_once_wait_for_their_turn(processes):
    a = processes("a")
    added = await asyncio.gather(*(a.add("1", f"u{i}", f"c{i}", info(f"u{i}")) for i in range(300)))
    assert all(added)
    assert len(await a.members("1")) == 300


# A process that dies or stalls: only where processes can die apart from each other.
@pytest.mark.parametrize("processes", ["redis", "redis-cluster"], indirect=True)
async def test_a_departure_whose_writer_died_is_reaped_again(processes):
    dead, live = processes("dead", ttl=0.6), processes("live", ttl=0.6)
    await dead.add("1", "bob", "c1", info("bob"))
    await dead.add("1", "amy", "c2", info("amy"))
    assert await dead.remove("1", "bob", "c1") is True
    assert await dead.remove("1", "amy", "c2") is True  # neither settled: `dead` dies
    assert await live.add("1", "amy", "c3", info("amy")) is False  # back while departing
    for _ in range(6):
        await asyncio.sleep(0.15)
        await live.refresh()
    changes = await live.reap("1", 100)
    assert sorted((c.member_key, c.present) for c in changes) == [("amy", True), ("bob", False)]
    assert await live.settle("1", "bob") is None
    assert await live.reap("1", 100) == []
    assert list(await live.members("1")) == ["amy"]


@pytest.mark.parametrize("processes", ["redis", "redis-cluster"], indirect=True)
async def test_a_stalled_process_gets_its_reaped_members_back(processes):
    stalled, other = processes("stalled", ttl=0.6), processes("other", ttl=0.6)
    await stalled.add("1", "bob", "c1", info("bob"))
    await asyncio.sleep(0.5)  # past the entry's life without a refresh
    [gone] = await other.reap("1", 100)
    assert (gone.member_key, gone.present) == ("bob", False)
    assert await stalled.refresh() == []  # back while departing: the departure's writer tells
    assert await other.settle("1", "bob") == info("bob")
    await asyncio.sleep(0.5)
    [gone] = await other.reap("1", 100)
    assert await other.settle("1", "bob") is None  # settled before the refresh came
    back = await stalled.refresh()
    assert [(c.member_key, c.present, c.info) for c in back] == [("bob", True, info("bob"))]
    assert list(await other.members("1")) == ["bob"]


@pytest.mark.parametrize("processes", ["redis"], indirect=True)
async def test_entries_redis_lost_come_back_without_a_return(processes, redis_base, redis_prefix):
    a = processes("a")
    await a.add("1", "bob", "c1", info("bob"))
    client = redis.Redis.from_url(redis_base)
    try:  # as after a Redis restart without persistence
        await client.delete(*await client.keys(redis_prefix + "presence*"))
    finally:
        await client.aclose()
    assert await a.refresh() == []  # no participant_left was written: nothing to write back
    assert list(await a.members("1")) == ["bob"]


# In one process connection ids are unique; across processes they may repeat.
@pytest.mark.parametrize("processes", ["redis"], indirect=True)
async def test_connection_ids_are_per_process(processes):
    a, b = processes("a"), processes("b")
    assert await a.add("1", "bob", "c1", info("bob")) is True
    assert await b.add("1", "bob", "c1", info("bob")) is False  # same id, other process
    assert await a.remove("1", "bob", "c1") is False
    assert await b.remove("1", "bob", "c1") is True


async def test_rooms_lists_rooms_with_entries_on_any_process(processes):
    a, b = processes("a"), processes("b")
    await a.add("1", "bob", "c1", info("bob"))
    await b.add("2", "amy", "c1", info("amy"))
    assert sorted(await a.rooms()) == ["1", "2"]
    await b.remove("2", "amy", "c1")
    assert sorted(await b.rooms()) == ["1", "2"]  # until amy's departure is written
    await b.settle("2", "amy")
    assert await b.rooms() == ["1"]


# User slots: the per-user connection limit. Connection ids differ across the "processes"
# here so that the same cases hold for the single in-memory process.


async def test_user_slots_cap_a_users_connections_on_every_process(processes):
    a, b = processes("a"), processes("b")
    assert await claim(a, "acme", "bob", "c1", 2) is True
    assert await claim(b, "acme", "bob", "c2", 2) is True
    assert await claim(a, "acme", "bob", "c3", 2) is False
    assert await claim(b, "acme", "bob", "c4", 2) is False
    assert await claim(a, "acme", "bob", "c1", 2) is True  # held already: not counted twice
    assert await claim(b, "acme", "bob", "c4", 2) is False
    # other users, and the same user id in another account, have slots of their own
    assert await claim(b, "acme", "amy", "c5", 2) is True
    assert await claim(b, "other", "bob", "c6", 2) is True
    assert await claim(a, "ac", "me:bob", "c7", 1) is True  # no key collision


async def test_the_accounts_pool_is_apart_from_its_users(processes):
    a, b = processes("a"), processes("b")
    assert await claim(a, "acme", "bob", "c1", 1) is True
    assert await claim(a, "acme", ACCOUNT_SLOTS, "c1", 2) is True  # the same connection
    assert await claim(b, "acme", ACCOUNT_SLOTS, "c2", 2) is True
    assert await claim(b, "acme", ACCOUNT_SLOTS, "c3", 2) is False
    assert await claim(b, "acme", "amy", "c3", 1) is True  # the user pools are not full
    assert await claim(a, "acm", ACCOUNT_SLOTS, "c4", 1) is True  # no key collision
    await release(a, "acme", ACCOUNT_SLOTS, "c1")
    assert await claim(b, "acme", ACCOUNT_SLOTS, "c3", 2) is True


async def test_slots_in_a_users_and_its_accounts_pools_are_claimed_all_or_none(processes):
    a, b = processes("a"), processes("b")
    pools = {"bob": 1, ACCOUNT_SLOTS: 2}
    assert await a.claim_slots("acme", "c1", pools) is None
    assert await a.claim_slots("acme", "c1", pools) is None  # held already: not counted twice
    assert await b.claim_slots("acme", "c2", pools) == "bob"  # and the account's slot not taken:
    assert await b.claim_slots("acme", "c3", {"amy": 1, ACCOUNT_SLOTS: 2}) is None
    assert await b.claim_slots("acme", "c4", {"eve": 1, ACCOUNT_SLOTS: 2}) == ACCOUNT_SLOTS
    assert await claim(b, "acme", "eve", "c5", 1) is True  # eve's slot was not taken either
    await a.release_slots("acme", ["bob", ACCOUNT_SLOTS], "c1")
    await a.release_slots("acme", ["bob", ACCOUNT_SLOTS], "c1")  # twice: harmless
    assert await b.claim_slots("acme", "c2", pools) is None


async def test_racing_claims_in_two_pools_never_exceed_either_limit(processes):
    a, b = processes("a"), processes("b")
    pools = [{f"u{i % 3}": 2, ACCOUNT_SLOTS: 5} for i in range(30)]
    claims = [(a if i % 2 else b).claim_slots("acme", f"c{i}", pools[i]) for i in range(30)]
    refused = await asyncio.gather(*claims)
    users = [f"u{i % 3}" for i, full in enumerate(refused) if full is None]
    assert len(users) == 5
    assert max(users.count(u) for u in set(users)) <= 2


async def test_releasing_a_user_slot_admits_the_next_connection(processes):
    a, b = processes("a"), processes("b")
    assert await claim(a, "acme", "bob", "c1", 1) is True
    assert await claim(b, "acme", "bob", "c2", 1) is False
    await release(a, "acme", "bob", "c1")
    await release(a, "acme", "bob", "c1")  # twice: harmless
    await release(b, "acme", "bob", "c9")  # never claimed: harmless
    assert await claim(b, "acme", "bob", "c2", 1) is True
    assert await claim(a, "acme", "bob", "c3", 1) is False


async def test_racing_claims_never_exceed_the_limit(processes):
    a, b = processes("a"), processes("b")
    for round_ in range(2):
        claims = [claim(a if i % 2 else b, "acme", "bob", f"r{round_}c{i}", 5) for i in range(30)]
        admitted = await asyncio.gather(*claims)
        assert sum(admitted) == 5
        owners = [(a if i % 2 else b, f"r{round_}c{i}") for i, ok in enumerate(admitted) if ok]
        await asyncio.gather(*(release(p, "acme", "bob", conn) for p, conn in owners))


async def test_a_slot_released_during_a_refresh_stays_released(processes):
    a, b = processes("a"), processes("b")
    for i in range(10):
        assert await claim(a, "acme", "bob", f"a{i}", 1) is True
        await asyncio.gather(a.refresh(), release(a, "acme", "bob", f"a{i}"))
        assert await claim(b, "acme", "bob", f"b{i}", 1) is True
        await release(b, "acme", "bob", f"b{i}")


@pytest.mark.parametrize("processes", ["redis"], indirect=True)
async def test_user_slots_of_a_process_that_stops_refreshing_expire(processes):
    dead, live = processes("dead", ttl=0.6), processes("live", ttl=0.6)
    assert await claim(dead, "acme", "bob", "c1", 3) is True
    assert await claim(dead, "acme", "bob", "c2", 3) is True
    assert await claim(live, "acme", "bob", "c3", 3) is True
    assert await claim(live, "acme", "bob", "c4", 3) is False
    for _ in range(6):  # `live` refreshes, `dead` does not
        await asyncio.sleep(0.15)
        await live.refresh()
    assert await claim(live, "acme", "bob", "c4", 3) is True
    assert await claim(live, "acme", "bob", "c5", 3) is True
    assert await claim(live, "acme", "bob", "c6", 3) is False  # c3 was kept alive


@pytest.mark.parametrize("processes", ["redis"], indirect=True)
async def test_a_dead_processs_slots_all_expire_at_once(processes):
    dead, live = processes("dead", ttl=0.6), processes("live", ttl=0.6)
    assert await claim(dead, "acme", "bob", "c1", 2) is True
    await asyncio.sleep(0.1)
    assert await claim(dead, "acme", "bob", "c2", 2) is True  # then `dead` dies
    while not await claim(live, "acme", "bob", "l1", 2):
        await asyncio.sleep(0.01)
    assert await claim(live, "acme", "bob", "l2", 2) is True, "its slots expired one by one"


@pytest.mark.parametrize("processes", ["redis"], indirect=True)
async def test_user_slots_are_per_process_connection(processes):
    a, b = processes("a"), processes("b")
    assert await claim(a, "acme", "bob", "c1", 2) is True
    assert await claim(b, "acme", "bob", "c1", 2) is True  # same id, other process
    assert await claim(a, "acme", "bob", "c2", 2) is False
    await release(a, "acme", "bob", "c1")
    assert await claim(a, "acme", "bob", "c2", 2) is True
    assert await claim(b, "acme", "bob", "c3", 2) is False


@pytest.mark.parametrize("processes", ["redis"], indirect=True)
async def test_refresh_registers_slots_again_after_redis_lost_them(processes, redis_base, redis_prefix):
    a, b = processes("a"), processes("b")
    assert await claim(a, "acme", "bob", "c1", 1) is True
    client = redis.Redis.from_url(redis_base)
    try:  # as after a Redis restart without persistence
        assert await client.delete(*await client.keys(redis_prefix + "presence-user:*")) == 1
    finally:
        await client.aclose()
    await a.refresh()
    assert await claim(b, "acme", "bob", "c2", 1) is False


async def test_join_caps_new_participants_atomically_on_every_process(processes):
    a, b = processes("a"), processes("b")
    joins = [
        (a if i % 2 else b).join("1", f"p{i}", f"c{i}", info(f"p{i}"), participant_limit=7) for i in range(40)
    ]
    admissions = await asyncio.gather(*joins)
    assert sum(x.admitted for x in admissions) == 7
    assert all(x.first for x in admissions if x.admitted)
    assert not any(x.first for x in admissions if not x.admitted)
    assert (await a.roster("1", 100)).participant_count == 7
    assert len(await b.members("1")) == 7, "a refused join registered nothing"
    # Full: staff still come in, and so does a second tab of a present participant.
    i = next(i for i, x in enumerate(admissions) if x.admitted)
    present, owner = f"p{i}", (a if i % 2 else b)
    staff = await a.join("1", "sarah", "s1", info("sarah", "instructor"), participant_limit=7)
    again = await b.join("1", present, "tab2", info(present), participant_limit=7)
    assert staff.admitted and staff.first and staff.participant_count == 7
    assert again.admitted and not again.first
    # A leave frees a place.
    await b.remove("1", present, "tab2")
    await owner.remove("1", present, f"c{i}")
    late = await a.join("1", "late", "c99", info("late"), participant_limit=7)
    assert late.admitted and late.participant_count == 7


async def test_roster_is_bounded_and_in_join_order(processes):
    a, b = processes("a"), processes("b")
    for i in range(12):
        await (a if i % 2 else b).join("1", f"p{i:02}", f"c{i}", info(f"p{i:02}"), None)
    await a.join("1", "sarah", "s1", info("sarah", "instructor"), None)
    await b.join("1", "olga", "o1", info("olga", "observer"), None)
    roster = await b.roster("1", 5)
    assert roster.participant_count == 12
    assert [p["participant_id"] for p in roster.participants] == [f"p{i:02}" for i in range(5)]
    assert [s["participant_id"] for s in roster.staff] == ["sarah", "olga"]
    await a.remove("1", "p01", "c1")
    roster = await a.roster("1", 3)
    assert roster.participant_count == 11
    assert [p["participant_id"] for p in roster.participants] == ["p00", "p02", "p03"]
    assert (await a.roster("1", 0)).participants == []
    assert (await a.roster("empty", 10)).participant_count == 0
