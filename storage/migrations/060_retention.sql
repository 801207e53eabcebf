-- Retention (hub/retention.py, docs/operations.md "Retention"): the log of a session that
-- ended long enough ago is written to an archive file, then deleted from hub_events.
-- A row here is what the session keeps of it: where the archive is, and the metrics
-- computed from the whole log before it went (session metrics are a fold over the log).
CREATE TABLE hub_archives (
    session_pk   bigint PRIMARY KEY REFERENCES hub_sessions (id) ON DELETE CASCADE,
    location     text NOT NULL,
    sha256       text NOT NULL,
    event_count  bigint NOT NULL,
    first_seq    bigint NOT NULL,
    last_seq     bigint NOT NULL,
    metrics      jsonb NOT NULL,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    -- set once every archived event is deleted; NULL: a trim still to finish (a crash)
    trimmed_at   timestamptz,
    -- set when the log was put back; the retention job leaves such a session alone
    restored_at  timestamptz
);

-- The job's candidates: sessions that ended before a cutoff.
CREATE INDEX hub_sessions_ended_at ON hub_sessions (ended_at) WHERE ended_at IS NOT NULL;
