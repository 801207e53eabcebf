"""PostgreSQL implementation of the webhook store seam (`hub.webhooks.store.WebhookStore`).

Tables in `migrations/050_webhooks.sql`. Leases are rows, claimed with
`FOR UPDATE SKIP LOCKED` so that processes claiming at once split the work instead of
waiting for each other, and every write of a cursor is conditional on its owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from hub.store import StoredEvent
from hub.webhooks.store import Attempt, Lease, Progress, Saved, Webhook, WebhookStatus

_WEBHOOK = "w.id, w.account_id, w.url, w.event_types, w.session_id AS filter_session, w.secret, w.created_at"

_STATUS = f"""
SELECT {_WEBHOOK},
       coalesce(c.backlog, 0) AS backlog, c.oldest_ts, now() AS now,
       coalesce(c.retrying, 0) AS retrying,
       coalesce(d.failures, 0) AS failures, d.last_error, d.last_delivered_at
  FROM hub_webhooks w
  LEFT JOIN LATERAL (
      SELECT sum(s.head_seq - c.delivered_seq) AS backlog,
             count(*) FILTER (WHERE c.attempts > 0) AS retrying,
             min((SELECT e.ts FROM hub_events e
                   WHERE e.session_pk = c.session_pk AND e.seq = c.delivered_seq + 1)) AS oldest_ts
        FROM hub_webhook_cursors c JOIN hub_sessions s ON s.id = c.session_pk
       WHERE c.webhook_id = w.id AND s.head_seq > c.delivered_seq
  ) c ON true
  LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE x.status <> 'delivered'
                                AND x.attempted_at > now() - interval '1 hour') AS failures,
             (array_agg(x.error ORDER BY x.id DESC) FILTER (WHERE x.status <> 'delivered'))[1] AS last_error,
             max(x.attempted_at) FILTER (WHERE x.status = 'delivered') AS last_delivered_at
        FROM (SELECT * FROM hub_webhook_deliveries
               WHERE webhook_id = w.id ORDER BY id DESC LIMIT 1000) x
  ) d ON true
 WHERE w.account_id = $1 AND ($2::text IS NULL OR w.id = $2)
 ORDER BY w.created_at, w.id
"""

# A new cursor starts at 0 for a session created after the endpoint, else after the last
# event written before the endpoint existed.
_TRACK = """
INSERT INTO hub_webhook_cursors (webhook_id, session_pk, delivered_seq)
SELECT w.id, s.id,
       CASE WHEN s.created_at >= w.created_at THEN 0
            ELSE coalesce((SELECT max(e.seq) FROM hub_events e
                            WHERE e.session_pk = s.id AND e.ts < w.created_at), 0) END
  FROM hub_webhooks w
  JOIN hub_sessions s ON s.account_id = w.account_id
                     AND (w.session_id IS NULL OR w.session_id = s.session_id)
 WHERE ($1::bigint[] IS NULL OR s.id = ANY ($1))
   AND s.head_seq > 0 AND s.updated_at >= w.created_at
   AND NOT EXISTS (SELECT 1 FROM hub_webhook_cursors c WHERE c.webhook_id = w.id AND c.session_pk = s.id)
ON CONFLICT DO NOTHING
"""

_CLAIM = f"""
WITH due AS (
    SELECT c.webhook_id, c.session_pk
      FROM hub_webhook_cursors c JOIN hub_sessions s ON s.id = c.session_pk
     WHERE ($4::bigint[] IS NULL OR c.session_pk = ANY ($4))
       AND s.head_seq > coalesce(c.replay_from, c.delivered_seq)
       AND (c.replay_from IS NOT NULL OR c.next_attempt_at IS NULL OR c.next_attempt_at <= now())
       AND (c.lease_owner IS NULL OR c.lease_until < now()
            OR (c.lease_owner = $1 AND NOT (c.webhook_id || ':' || c.session_pk) = ANY ($5::text[])))
     ORDER BY c.updated_at
     LIMIT $3
       FOR UPDATE OF c SKIP LOCKED
)
UPDATE hub_webhook_cursors c
   SET lease_owner = $1,
       lease_until = now() + make_interval(secs => $2),
       delivered_seq = coalesce(c.replay_from, c.delivered_seq),
       attempts = CASE WHEN c.replay_from IS NULL THEN c.attempts ELSE 0 END,
       next_attempt_at = CASE WHEN c.replay_from IS NULL THEN c.next_attempt_at END,
       replay_from = NULL,
       updated_at = now()
  FROM due, hub_webhooks w, hub_sessions s
 WHERE c.webhook_id = due.webhook_id AND c.session_pk = due.session_pk
   AND w.id = c.webhook_id AND s.id = c.session_pk
RETURNING {_WEBHOOK}, c.session_pk, s.session_id, c.delivered_seq, c.attempts, s.head_seq
"""

# Moves the cursor (or to where a replay asked) and records the attempts, only while the
# caller still owns the lease; one statement, so both or neither.
_SAVE = """
WITH cur AS (
    UPDATE hub_webhook_cursors c
       SET delivered_seq = coalesce(c.replay_from, $4),
           attempts = CASE WHEN c.replay_from IS NULL THEN $5 ELSE 0 END,
           next_attempt_at = CASE WHEN c.replay_from IS NULL THEN $6::timestamptz END,
           replay_from = NULL,
           lease_owner = CASE WHEN $8 = 'release'
                                OR ($8 = 'if_idle' AND s.head_seq <= coalesce(c.replay_from, $4))
                              THEN NULL ELSE c.lease_owner END,
           lease_until = CASE WHEN $8 = 'release'
                                OR ($8 = 'if_idle' AND s.head_seq <= coalesce(c.replay_from, $4))
                              THEN NULL ELSE now() + make_interval(secs => $7) END,
           updated_at = now()
      FROM hub_sessions s
     WHERE c.webhook_id = $1 AND c.session_pk = $2 AND c.lease_owner = $3 AND s.id = c.session_pk
    RETURNING c.delivered_seq, s.head_seq, c.lease_owner IS NULL AS released
), made AS (
    INSERT INTO hub_webhook_deliveries (webhook_id, session_id, seq, event_type, message_id, attempt,
                                        status, response_code, error, duration_ms, next_retry_at,
                                        attempted_at)
    SELECT $1, x.* FROM unnest($9::text[], $10::bigint[], $11::text[], $12::text[], $13::int[],
                               $14::text[], $15::int[], $16::text[], $17::int[], $18::timestamptz[],
                               $19::timestamptz[]) AS x
     WHERE EXISTS (SELECT 1 FROM cur)
)
SELECT * FROM cur
"""

# The head and the page in one statement (one snapshot): nothing up to the head is missing.
_EVENTS = """
SELECT s.head_seq, e.seq, e.type, e.ts, e.actor, e.data
  FROM hub_sessions s
  LEFT JOIN LATERAL (
      SELECT seq, type, ts, actor, data FROM hub_events
       WHERE session_pk = s.id AND seq > $2 AND seq <= s.head_seq
         AND ($3::text[] IS NULL OR type = ANY ($3))
       ORDER BY seq LIMIT $4
  ) e ON true
 WHERE s.id = $1
"""

_PRUNE = """
DELETE FROM hub_webhook_deliveries d
 USING (SELECT w.id AS webhook_id,
               (SELECT x.id FROM hub_webhook_deliveries x WHERE x.webhook_id = w.id
                 ORDER BY x.id DESC OFFSET $1 LIMIT 1) AS cutoff
          FROM hub_webhooks w) k
 WHERE d.webhook_id = k.webhook_id AND d.id <= k.cutoff
"""


def _webhook(row: asyncpg.Record) -> Webhook:
    types = row["event_types"]
    return Webhook(
        id=row["id"],
        account_id=row["account_id"],
        url=row["url"],
        event_types=tuple(types) if types is not None else None,
        session_id=row["filter_session"],
        secret=row["secret"],
        created_at=row["created_at"],
    )


def _status(row: asyncpg.Record) -> WebhookStatus:
    oldest = row["oldest_ts"]
    return WebhookStatus(
        webhook=_webhook(row),
        backlog=int(row["backlog"]),
        lag_seconds=round((row["now"] - oldest).total_seconds(), 3) if oldest else None,
        retrying_sessions=int(row["retrying"]),
        failures_last_hour=int(row["failures"]),
        last_error=row["last_error"],
        last_delivered_at=row["last_delivered_at"],
    )


def _attempt(row: asyncpg.Record) -> Attempt:
    return Attempt(
        id=row["id"],
        webhook_id=row["webhook_id"],
        session_id=row["session_id"],
        seq=row["seq"],
        event_type=row["event_type"],
        message_id=row["message_id"],
        attempt=row["attempt"],
        status=row["status"],
        response_code=row["response_code"],
        error=row["error"],
        duration_ms=row["duration_ms"],
        next_retry_at=row["next_retry_at"],
        attempted_at=row["attempted_at"],
    )


class PgWebhookStore:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    # management

    async def create(
        self,
        account_id: str,
        webhook_id: str,
        url: str,
        event_types: Sequence[str] | None,
        session_id: str | None,
        secret: str,
    ) -> Webhook:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO hub_accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING", account_id
            )
            row = await conn.fetchrow(
                "INSERT INTO hub_webhooks AS w (id, account_id, url, event_types, session_id, secret)"
                f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_WEBHOOK}",
                webhook_id,
                account_id,
                url,
                list(event_types) if event_types is not None else None,
                session_id,
                secret,
            )
        return _webhook(row)

    async def count(self, account_id: str) -> int:
        return int(
            await self.pool.fetchval("SELECT count(*) FROM hub_webhooks WHERE account_id = $1", account_id)
        )

    async def statuses(self, account_id: str) -> list[WebhookStatus]:
        return [_status(row) for row in await self.pool.fetch(_STATUS, account_id, None)]

    async def status(self, account_id: str, webhook_id: str) -> WebhookStatus | None:
        row = await self.pool.fetchrow(_STATUS, account_id, webhook_id)
        return _status(row) if row else None

    async def delete(self, account_id: str, webhook_id: str) -> bool:
        status = await self.pool.execute(
            "DELETE FROM hub_webhooks WHERE account_id = $1 AND id = $2", account_id, webhook_id
        )
        return bool(status.endswith(" 1"))

    async def attempts(self, webhook_id: str, limit: int, before_id: int | None) -> list[Attempt]:
        rows = await self.pool.fetch(
            "SELECT * FROM hub_webhook_deliveries WHERE webhook_id = $1 AND ($3::bigint IS NULL OR id < $3)"
            " ORDER BY id DESC LIMIT $2",
            webhook_id,
            limit,
            before_id,
        )
        return [_attempt(row) for row in rows]

    async def replay(self, webhook_id: str, session_pk: int, since: int) -> None:
        await self.pool.execute(
            "INSERT INTO hub_webhook_cursors (webhook_id, session_pk, delivered_seq, replay_from)"
            " VALUES ($1, $2, $3, $3) ON CONFLICT (webhook_id, session_pk)"
            " DO UPDATE SET replay_from = $3, updated_at = now()",
            webhook_id,
            session_pk,
            since,
        )

    # delivery

    async def any_webhooks(self) -> bool:
        return bool(await self.pool.fetchval("SELECT EXISTS (SELECT 1 FROM hub_webhooks)"))

    async def track(self, session_pks: Sequence[int] | None) -> int:
        status = await self.pool.execute(_TRACK, list(session_pks) if session_pks is not None else None)
        return int(status.split()[-1])

    async def claim(
        self, owner: str, ttl: float, limit: int, session_pks: Sequence[int] | None, busy: Sequence[str]
    ) -> list[Lease]:
        pks = list(session_pks) if session_pks is not None else None
        rows = await self.pool.fetch(_CLAIM, owner, ttl, limit, pks, list(busy))
        return [
            Lease(
                webhook=_webhook(row),
                session_pk=row["session_pk"],
                session_id=row["session_id"],
                delivered_seq=row["delivered_seq"],
                attempts=row["attempts"],
                head_seq=row["head_seq"],
            )
            for row in rows
        ]

    async def events(
        self, session_pk: int, after: int, types: Sequence[str] | None, limit: int
    ) -> tuple[int, list[StoredEvent]]:
        wanted = list(types) if types is not None else None
        rows = await self.pool.fetch(_EVENTS, session_pk, after, wanted, limit)
        events = [
            StoredEvent(session_pk, r["seq"], r["type"], r["ts"], r["actor"], r["data"])
            for r in rows
            if r["seq"] is not None
        ]
        if len(events) == limit:
            return events[-1].seq, events
        return max(after, rows[0]["head_seq"] if rows else after), events

    async def save(self, owner: str, lease: Lease, progress: Progress, ttl: float, mode: str) -> Saved | None:
        made = progress.attempts_made
        columns: list[list[Any]] = [
            [a.session_id for a in made],
            [a.seq for a in made],
            [a.event_type for a in made],
            [a.message_id for a in made],
            [a.attempt for a in made],
            [a.status for a in made],
            [a.response_code for a in made],
            [a.error for a in made],
            [a.duration_ms for a in made],
            [a.next_retry_at for a in made],
            [a.attempted_at for a in made],
        ]
        row = await self.pool.fetchrow(
            _SAVE,
            lease.webhook.id,
            lease.session_pk,
            owner,
            progress.delivered_seq,
            progress.attempts,
            progress.next_attempt_at,
            ttl,
            mode,
            *columns,
        )
        if row is None:
            return None
        return Saved(delivered_seq=row["delivered_seq"], head_seq=row["head_seq"], released=row["released"])

    async def prune(self, keep_per_webhook: int) -> int:
        status = await self.pool.execute(_PRUNE, keep_per_webhook)
        return int(status.split()[-1])
