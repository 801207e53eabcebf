-- Sessions (rooms) and their ordered, durable event log.

CREATE TABLE hub_accounts (
    account_id  text PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO hub_accounts (account_id, name) VALUES ('default', 'Default account');

CREATE TABLE hub_sessions (
    id                bigserial PRIMARY KEY,
    account_id        text NOT NULL DEFAULT 'default' REFERENCES hub_accounts (account_id),
    session_id        text NOT NULL,
    title             text NOT NULL,
    session_type      text NOT NULL DEFAULT 'live',
    status            text NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'in_progress', 'paused', 'completed', 'cancelled')),
    instructor        text,
    max_participants  integer NOT NULL DEFAULT 100,
    scheduled_start   timestamptz,
    started_at        timestamptz,
    ended_at          timestamptz,
    current_technique jsonb,
    head_seq          bigint NOT NULL DEFAULT 0,
    retained_from     bigint NOT NULL DEFAULT 1,
    attributes        jsonb NOT NULL DEFAULT '{}',
    created_by        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, session_id)
);
CREATE INDEX hub_sessions_account_status ON hub_sessions (account_id, status);

CREATE TABLE hub_events (
    session_pk  bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    type        text NOT NULL,
    ts          timestamptz NOT NULL,
    actor       jsonb,
    data        jsonb NOT NULL DEFAULT '{}',
    dedupe_key  text,
    PRIMARY KEY (session_pk, seq)
);
CREATE UNIQUE INDEX hub_events_dedupe ON hub_events (session_pk, dedupe_key)
    WHERE dedupe_key IS NOT NULL;

-- The append function (hub_append_events) is not a migration: storage/sql/append.sql
-- defines it and is applied at every start (storage/migrate.py).
