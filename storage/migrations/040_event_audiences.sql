-- Audience-scoped delivery (hub/audience.py): a session's audience overrides set at
-- creation live with the session; later changes are `session_update` events carrying
-- `audience`, found by the partial index below when a room opens or a member resumes.

ALTER TABLE hub_sessions ADD COLUMN audience jsonb NOT NULL DEFAULT '{}';

CREATE INDEX hub_events_audience_changes ON hub_events (session_pk, seq)
    WHERE type = 'session_update' AND data ? 'audience';

-- The latest event of a few types (views, group HRV for the live listing) is found by
-- walking back from the head: no extra index, the primary key serves it.
