-- Join links (hub/invites.py): an invite admits people to one session in one role; each
-- person who opens it claims a seat (a guest user id and the name they chose) and keeps
-- only a renewal credential, stored here as its SHA-256.

CREATE TABLE hub_invites (
    code        text PRIMARY KEY,
    session_pk  bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    account_id  text NOT NULL,
    role        text NOT NULL CHECK (role IN ('participant', 'observer')),
    label       text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    max_uses    integer CHECK (max_uses IS NULL OR max_uses > 0),
    uses        integer NOT NULL DEFAULT 0,
    revoked_at  timestamptz
);
CREATE INDEX hub_invites_by_session ON hub_invites (session_pk, created_at);

CREATE TABLE hub_invite_seats (
    invite_code  text NOT NULL REFERENCES hub_invites (code) ON DELETE CASCADE,
    user_id      text NOT NULL,
    name         text NOT NULL,
    secret_hash  bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invite_code, user_id)
);
