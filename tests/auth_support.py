"""Helpers for the auth, limits and fuzz tests: tokens good and bad, a token-mode hub on a
database of its own (shared by a whole test module), and row counts of that database.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import jwt
import orjson

from tests.support import HubProcess, admin_execute, database_dsn, start_hub

SECRET = "test-secret-for-the-auth-suite-0123456789abcdef"
OTHER_SECRET = "a-different-secret-nobody-configured-0123456789"
DURABLE_TYPES = (
    "session_started",
    "session_paused",
    "session_resumed",
    "session_ending",
    "session_ended",
    "participant_joined",
    "participant_left",
    "technique_changed",
    "hrv_update",
    "hrv_milestone",
    "achievement_unlocked",
    "prompt",
    "response",
    "announcement",
    "session_update",
    "note",
    "feedback",
)
# Data that is valid for each type, so that only the role or the token can be the reason
# for a refusal.
VALID_DATA: dict[str, dict[str, Any]] = {
    "technique_changed": {"technique": "Box Breathing"},
    "hrv_update": {"hrv": 42.0},
    "hrv_milestone": {"improvement": 10},
    "achievement_unlocked": {"title": "Calm"},
    "prompt": {"text": "How do you feel?"},
    "response": {"text": "Fine"},
    "announcement": {"message": "Break in 5"},
    "session_update": {"k": "v"},
    "note": {"content": "noted"},
    "feedback": {"message_seq": 1, "feedback_type": "like"},
    "participant_joined": {"participant_id": "x", "name": "x", "participant_count": 1},
    "participant_left": {"participant_id": "x", "name": "x", "participant_count": 0},
}


def token(
    account: str = "acme",
    user: str = "ann",
    role: str = "instructor",
    ttl: int = 600,
    sessions: list[str] | None = None,
    name: str | None = None,
    key: str = SECRET,
    kid: str | None = "default",
    **extra: Any,
) -> str:
    claims: dict[str, Any] = {"sub": user, "account": account, "role": role, "exp": int(time.time()) + ttl}
    if sessions is not None:
        claims["sessions"] = sessions
    if name is not None:
        claims["name"] = name
    claims.update(extra)
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, key, algorithm="HS256", headers=headers)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def alg_none_token(**kwargs: Any) -> str:
    """A token that claims to need no signature at all."""
    payload = jwt.decode(token(**kwargs), options={"verify_signature": False})
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    return f"{header}.{_b64(orjson.dumps(payload))}."


def bad_tokens(**kwargs: Any) -> dict[str, str | None]:
    """Every way a token can be unacceptable, by name (None: no token at all)."""
    return {
        "no_token": None,
        "expired": token(ttl=-60, **kwargs),
        "forged": token(key=OTHER_SECRET, **kwargs),
        "alg_none": alg_none_token(**kwargs),
        "unknown_kid": token(kid="retired", **kwargs),
        "garbage": "not-a-jwt",
    }


def auth(token_text: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_text}"} if token_text else {}


@contextmanager
def token_hub(pg_base: str, **env: str) -> Iterator[tuple[HubProcess, str]]:
    """A hub in token mode on a database of its own; (hub, dsn). For module fixtures."""
    name = f"hubtest_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_execute(pg_base, f'CREATE DATABASE "{name}"'))
    dsn = database_dsn(pg_base, name)
    hub: HubProcess | None = None
    try:
        hub = start_hub({"HUB_DEV": "0", "HUB_SECRET": SECRET, "DATABASE_URL": dsn, **env})
        yield hub, dsn
    finally:
        if hub is not None:
            hub.stop()
        asyncio.run(admin_execute(pg_base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_session(hub: HubProcess, account: str, session_id: str, start: bool = True, **fields: Any) -> None:
    """Create (and start) a session in `account`, synchronously, for module fixtures."""
    headers = auth(token(account=account, user=f"{account}-admin", role="admin"))
    body = {"session_id": session_id, "title": f"{account} session", "instructor": "Sarah", **fields}
    with httpx.Client(base_url=hub.base_url, headers=headers, timeout=15) as client:
        created = client.post("/api/v2/sessions/create", json=body)
        assert created.status_code == 201, created.text
        if start:
            started = client.post(f"/api/v2/session/{session_id}/start")
            assert started.status_code == 200, started.text


def settle(dsn: str, quiet: float = 1.0, timeout: float = 20.0) -> None:
    """Wait until the database has not changed for `quiet` seconds: the background work a
    fixture's setup started (the records projector following the sessions it created)
    is done before the tests compare snapshots around refused requests."""

    async def wait() -> None:
        deadline = time.monotonic() + timeout
        last, since = await snapshot(dsn), time.monotonic()
        while time.monotonic() - since < quiet:
            assert time.monotonic() < deadline, "the database kept changing"
            await asyncio.sleep(0.1)
            now = await snapshot(dsn)
            if now != last:
                last, since = now, time.monotonic()

    asyncio.run(wait())


async def snapshot(dsn: str) -> dict[str, Any]:
    """What a refused request must not change: the rows of every table (also the tables
    later features add) and the state of every session."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
        state: dict[str, Any] = {}
        for row in tables:
            name = row["table_name"]
            state[name] = await conn.fetchval(f'SELECT count(*) FROM "{name}"')
        state["session_states"] = await conn.fetchval(
            "SELECT coalesce(string_agg(account_id || '/' || session_id || ':' || status || ':'"
            " || head_seq, ',' ORDER BY id), '') FROM hub_sessions"
        )
    finally:
        await conn.close()
    return state
