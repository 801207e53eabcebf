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

-- The multi-channel summary (`session_summary`) is written by the hub after a session
-- completed: the one event a completed session accepts. Otherwise as in 030.
CREATE OR REPLACE FUNCTION hub_append_events(
    p_session bigint[], p_type text[], p_actor jsonb[], p_data jsonb[], p_dedupe text[]
) RETURNS TABLE (
    out_seq bigint, out_ts timestamptz, out_data jsonb,
    out_duplicate boolean, out_error text, out_status text
) LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    s record;
    v_existing record;
    v_needed text[];
    v_status text;
    v_data jsonb;
    v_ts timestamptz;
BEGIN
    PERFORM 1 FROM hub_sessions WHERE id = ANY (p_session) ORDER BY id FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_session, 1), 0) LOOP
        out_seq := NULL; out_ts := NULL; out_data := NULL;
        out_duplicate := false; out_error := NULL; out_status := NULL;

        SELECT id, status, started_at, head_seq INTO s FROM hub_sessions WHERE id = p_session[i];
        IF NOT FOUND THEN
            out_error := 'not_found';
            RETURN NEXT;
            CONTINUE;
        END IF;
        out_status := s.status;

        IF p_dedupe[i] IS NOT NULL THEN
            SELECT e.seq, e.ts, e.data INTO v_existing
              FROM hub_events e WHERE e.session_pk = s.id AND e.dedupe_key = p_dedupe[i];
            IF FOUND THEN
                out_seq := v_existing.seq; out_ts := v_existing.ts; out_data := v_existing.data;
                out_duplicate := true;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        v_data := coalesce(p_data[i], '{}'::jsonb);
        v_needed := CASE
            WHEN p_type[i] = 'session_started' THEN ARRAY['scheduled']
            WHEN p_type[i] = 'session_paused' THEN ARRAY['in_progress']
            WHEN p_type[i] = 'session_resumed' THEN ARRAY['paused']
            WHEN p_type[i] = 'session_ended' AND v_data->>'status' = 'cancelled'
                THEN ARRAY['scheduled', 'paused']
            WHEN p_type[i] IN ('session_ending', 'session_ended')
                THEN ARRAY['in_progress', 'paused']
            WHEN p_type[i] = 'session_summary' THEN ARRAY['completed']
            ELSE ARRAY['scheduled', 'in_progress', 'paused']
        END;
        IF NOT (s.status = ANY (v_needed)) THEN
            out_error := 'conflict';
            RETURN NEXT;
            CONTINUE;
        END IF;

        v_ts := clock_timestamp();
        v_status := CASE p_type[i]
            WHEN 'session_started' THEN 'in_progress'
            WHEN 'session_paused' THEN 'paused'
            WHEN 'session_resumed' THEN 'in_progress'
            WHEN 'session_ended' THEN coalesce(v_data->>'status', 'completed')
            ELSE s.status
        END;
        IF p_type[i] = 'session_started' THEN
            v_data := v_data || jsonb_build_object('status', v_status, 'started_at', v_ts);
        ELSIF p_type[i] = 'session_ended' THEN
            v_data := v_data || jsonb_build_object(
                'status', v_status, 'ended_at', v_ts,
                'duration_seconds',
                CASE WHEN s.started_at IS NULL THEN 0
                     ELSE floor(extract(epoch FROM v_ts - s.started_at))::bigint END);
        ELSIF p_type[i] IN ('session_paused', 'session_resumed') THEN
            v_data := v_data || jsonb_build_object('status', v_status);
        END IF;

        UPDATE hub_sessions SET
            head_seq = head_seq + 1,
            status = v_status,
            started_at = CASE WHEN p_type[i] = 'session_started' THEN v_ts ELSE started_at END,
            ended_at = CASE WHEN p_type[i] = 'session_ended' THEN v_ts ELSE ended_at END,
            current_technique = CASE WHEN p_type[i] = 'technique_changed'
                THEN v_data || jsonb_build_object('changed_at', v_ts) ELSE current_technique END,
            updated_at = v_ts
        WHERE id = s.id
        RETURNING head_seq INTO out_seq;

        INSERT INTO hub_events (session_pk, seq, type, ts, actor, data, dedupe_key)
        VALUES (s.id, out_seq, p_type[i], v_ts, p_actor[i], v_data, p_dedupe[i]);

        out_ts := v_ts; out_data := v_data; out_status := v_status;
        RETURN NEXT;
    END LOOP;
END;
$$;
