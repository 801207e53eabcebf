"""What an endpoint receives, per the Standard Webhooks specification.

Headers `webhook-id` (the same for every attempt of one event, so a receiver can drop
repeats), `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`
(`v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed by the secret's
base64-decoded bytes). The body is the event exactly as staff members receive it over
the WebSocket (with `prev_seq`), plus `account`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

import orjson

from ..events import iso
from ..store import StoredEvent

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def message_id(session_pk: int, seq: int) -> str:
    """One id per event of the log, whichever endpoint and attempt carries it."""
    return f"msg_{session_pk}_{seq}"


def body(account_id: str, session_id: str, event: StoredEvent) -> bytes:
    message: dict[str, Any] = {
        "type": event.type,
        "session_id": session_id,
        "seq": event.seq,
        "ts": iso(event.ts),
        "actor": event.actor,
        "data": event.data,
        # As staff members receive it: their view holds every event (docs/protocol.md, Views).
        "prev_seq": event.seq - 1,
        "account": account_id,
    }
    return orjson.dumps(message)


def signature(secret: str, msg_id: str, timestamp: int, payload: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, payload)
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, payload: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, payload),
        "user-agent": "session-hub-webhooks/1",
    }
