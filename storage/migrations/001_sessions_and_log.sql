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

-- Appends a batch of events in one round trip (group commit). Per item: the session's
-- status is checked and moved, the next seq is taken from the session row, and a
-- repeated dedupe key answers the first seq. Session rows are locked in id order first
-- so that two processes appending to the same sessions cannot deadlock.
CREATE FUNCTION hub_append_events(
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
            WHEN p_type[i] IN ('participant_joined', 'participant_left', 'announcement')
                THEN ARRAY['scheduled', 'in_progress', 'paused']
            ELSE ARRAY['in_progress', 'paused']
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
