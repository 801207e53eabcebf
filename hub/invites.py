"""Join links: an invite lets whoever opens its link into one session, in one role, under
a name of their choosing, without an operator minting a token per person.

An instructor (or admin) creates an invite for a session: a short random `code`, the
`role` it grants (`participant` or `observer`), when it stops admitting (`expires_at`)
and optionally how many people it admits (`max_uses`). The link is `/j/<code>`.

Whoever opens the link picks a display name and *claims a seat*: the hub stores the seat
(a user id of its own, `guest-…`, and the name) and answers a short-lived token for that
session, role, user and name (`HUB_INVITE_TOKEN_TTL`), plus a *renewal credential*, a
random secret only the page keeps (the hub stores its SHA-256). While the page is open it
trades the credential for fresh tokens, so a class can outlast any one token, and the
identity never travels in a forwardable URL: forwarding the link gives someone else a
seat of their own, under their own name.

Rules, each answered by a typed refusal (`InviteRefused`, HTTP 410 `gone` with
`details.reason`):

- `revoked`: the invite was revoked; no new seat, no renewal (those already in keep
  their connection until their token expires, at most `HUB_INVITE_TOKEN_TTL`);
- `expired`: past `expires_at`, no new seat; seats already claimed keep renewing while
  the session has not ended (a link that admits for an hour does not end a two-hour class);
- `used_up`: `max_uses` seats are claimed;
- `session_ended`: the session is over; nothing is admitted or renewed.

Claiming a seat checks and counts the use in one atomic step of the store, so racing
claims never exceed `max_uses`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, get_args

from .events import iso
from .lifecycle import TERMINAL_STATUSES

InviteRole = Literal["participant", "observer"]
INVITE_ROLES: tuple[str, ...] = get_args(InviteRole)
# Unambiguous when read aloud or typed from a projector: no 0/o, 1/l/i.
CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
CODE_LENGTH = 10  # 31^10 ≈ 2^49.5: not guessable at any rate the hub answers
SECRET_BYTES = 32
DEFAULT_EXPIRES_IN = 24 * 3600  # seconds
MAX_EXPIRES_IN = 90 * 24 * 3600
MAX_USES = 100_000
NAME_MAX = 100
LABEL_MAX = 200

# Why an invite admits nobody (the `reason` of a 410); its state is one of them, or active.
Refusal = Literal["revoked", "expired", "used_up", "session_ended"]
InviteState = Literal["active", Refusal]
REVOKED, EXPIRED, USED_UP, SESSION_ENDED = get_args(Refusal)
_REASON_TEXT = {
    REVOKED: "this invite was revoked; ask the instructor for a new link",
    EXPIRED: "this invite has expired; ask the instructor for a new link",
    USED_UP: "this invite has admitted as many people as it may; ask the instructor for a new link",
    SESSION_ENDED: "this session has ended",
}


class InviteRefused(Exception):
    """The invite cannot admit (or renew) now; `reason` is one of the four above."""

    def __init__(self, reason: str):
        super().__init__(_REASON_TEXT[reason])
        self.reason = reason
        self.message = _REASON_TEXT[reason]


@dataclass(frozen=True)
class Invite:
    code: str
    account_id: str
    session_pk: int
    session_id: str
    role: str
    label: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    max_uses: int | None
    uses: int
    revoked_at: datetime | None
    session_status: str  # of the session, when the invite was read
    session_title: str

    def refusal(self, now: datetime, renewing: bool = False) -> str | None:
        """Why the invite may not admit (or, `renewing`, renew) now; None when it may."""
        if self.revoked_at is not None:
            return REVOKED
        if self.session_status in TERMINAL_STATUSES:
            return SESSION_ENDED
        if renewing:
            return None
        if now >= self.expires_at:
            return EXPIRED
        if self.max_uses is not None and self.uses >= self.max_uses:
            return USED_UP
        return None

    def state(self, now: datetime) -> str:
        """`active`, or why it admits nobody: `revoked`, `session_ended`, `expired`, `used_up`."""
        return self.refusal(now) or "active"

    def to_json(self, base_url: str, now: datetime) -> dict[str, Any]:
        return {
            "code": self.code,
            "url": f"{base_url.rstrip('/')}{link_path(self.code)}",
            "session_id": self.session_id,
            "role": self.role,
            "label": self.label,
            "state": self.state(now),
            "uses": self.uses,
            "max_uses": self.max_uses,
            "expires_at": iso(self.expires_at),
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
        }


@dataclass(frozen=True)
class Seat:
    code: str
    user_id: str
    name: str


@dataclass(frozen=True)
class NewInvite:
    """A valid request to create an invite (`parse_new_invite`)."""

    role: str
    expires_in: int
    max_uses: int | None
    label: str | None


class InviteStore(Protocol):
    """Invites and their seats. `storage.invites.PgInviteStore` implements it.

    - `create` stores a new invite (codes are unique; a clash raises `CodeTaken`).
    - `claim_seat` admits one more person atomically: it raises `InviteRefused` unless
      `Invite.refusal` allows it at that moment, else counts the use and stores the seat.
      An unknown code raises `KeyError`.
    - `seat` finds the seat a renewal credential belongs to (by its hash), or None.
    - `revoke` marks the invite revoked (again: no change) and answers it.
    """

    async def create(
        self, code: str, session_pk: int, account_id: str, created_by: str, new: NewInvite
    ) -> Invite: ...

    async def get(self, code: str) -> Invite | None: ...

    async def list_for_session(self, session_pk: int) -> list[Invite]: ...

    async def revoke(self, code: str) -> Invite | None: ...

    async def claim_seat(self, code: str, user_id: str, name: str, secret_hash: bytes) -> Seat: ...

    async def seat(self, code: str, secret_hash: bytes) -> Seat | None: ...


class CodeTaken(Exception):
    pass


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def is_code(text: str) -> bool:
    return len(text) == CODE_LENGTH and all(c in CODE_ALPHABET for c in text)


def link_path(code: str) -> str:
    return f"/j/{code}"


def new_secret() -> tuple[str, bytes]:
    """A renewal credential for the page, and the hash the hub keeps of it."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return secret, secret_hash(secret)


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_guest_id() -> str:
    return f"guest-{secrets.token_hex(6)}"


def expiry(now: datetime, expires_in: int) -> datetime:
    return now + timedelta(seconds=expires_in)


def now_utc() -> datetime:
    return datetime.now(UTC)


def display_name_problem(name: str) -> str | None:
    """Why `name` cannot be a display name (it ends up in every event's actor)."""
    if not name.strip():
        return "must not be blank: it is the name others see"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "must not contain control characters"
    return None
