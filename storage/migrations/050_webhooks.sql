-- Webhooks: endpoints per account, one delivery cursor per endpoint and session, and
-- the attempts made (hub/webhooks/, storage/webhooks.py).
--
-- A cursor says how far the endpoint has been served in one session's log: every event
-- up to `delivered_seq` is done (delivered, filtered out, or given up after the last
-- retry). One process at a time holds a cursor's lease (`lease_owner`, `lease_until`)
-- and only the holder may move it, so two processes never deliver the same endpoint and
-- session at once; a dead holder's lease expires and another process takes over from
-- the cursor, re-sending at most what was delivered but not yet recorded.

CREATE TABLE hub_webhooks (
    id           text PRIMARY KEY,
    account_id   text NOT NULL REFERENCES hub_accounts (account_id),
    url          text NOT NULL,
    event_types  text[],          -- NULL: every type ("*")
    session_id   text,            -- NULL: every session of the account
    secret       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hub_webhooks_account ON hub_webhooks (account_id, created_at);

CREATE TABLE hub_webhook_cursors (
    webhook_id       text NOT NULL REFERENCES hub_webhooks (id) ON DELETE CASCADE,
    session_pk       bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    delivered_seq    bigint NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,   -- failed attempts of the next event
    next_attempt_at  timestamptz,                  -- backoff: not before
    replay_from      bigint,                       -- a replay was asked: restart after this seq
    lease_owner      text,
    lease_until      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (webhook_id, session_pk)
);
CREATE INDEX hub_webhook_cursors_session ON hub_webhook_cursors (session_pk);

CREATE TABLE hub_webhook_deliveries (
    id             bigserial PRIMARY KEY,
    webhook_id     text NOT NULL REFERENCES hub_webhooks (id) ON DELETE CASCADE,
    session_id     text NOT NULL,
    seq            bigint NOT NULL,
    event_type     text NOT NULL,
    message_id     text NOT NULL,
    attempt        integer NOT NULL,
    status         text NOT NULL CHECK (status IN ('delivered', 'retrying', 'failed')),
    response_code  integer,
    error          text,
    duration_ms    integer,
    next_retry_at  timestamptz,
    attempted_at   timestamptz NOT NULL
);
CREATE INDEX hub_webhook_deliveries_by_webhook ON hub_webhook_deliveries (webhook_id, id DESC);
