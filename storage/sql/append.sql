-- The log's append function, defined here only: applied with CREATE OR REPLACE at every
-- start (storage/migrate.py, under the migration lock), right after the lifecycle rules
-- it reads (hub_lifecycle_rules, filled from hub/lifecycle.py).
--
-- Appends a batch of events in one round trip (group commit). Per item: the session's
-- status is checked against the rules and moved, the next seq is taken from the session
-- row, and a repeated dedupe key answers the first seq. Session rows are locked in id
-- order first so that two processes appending to the same sessions cannot deadlock.
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
    v_rules jsonb;  -- 'event type/ends as/from status' -> to status
    v_ruled text[];  -- event types with rules of their own; every other type follows '*'
    v_kind text;
    v_status text;
    v_data jsonb;
    v_ts timestamptz;
BEGIN
    PERFORM 1 FROM hub_sessions WHERE id = ANY (p_session) ORDER BY id FOR UPDATE;
    -- The lifecycle rules, read once per batch (ends as '*': whatever the data says).
    SELECT jsonb_object_agg(event_type || '/' || coalesce(ends_as, '*') || '/' || from_status, to_status),
           array_agg(DISTINCT event_type)
      INTO v_rules, v_ruled FROM hub_lifecycle_rules;
    FOR i IN 1 .. coalesce(array_length(p_session, 1), 0) LOOP
        out_seq := NULL; out_ts := NULL; out_data := NULL;
        out_duplicate := false; out_error := NULL; out_status := NULL;

        SELECT id, status, started_at INTO s FROM hub_sessions WHERE id = p_session[i];
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
        -- The rule for this type (or '*') in this status; a rule naming an ending holds
        -- only for events whose data.status asks for it ('' when they name none).
        v_kind := CASE WHEN p_type[i] = ANY (v_ruled) THEN p_type[i] ELSE '*' END;
        v_status := coalesce(
            v_rules->>(v_kind || '/*/' || s.status),
            v_rules->>(v_kind || '/' || coalesce(v_data->>'status', '') || '/' || s.status));
        IF v_status IS NULL THEN
            out_error := 'conflict';
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- What the event records besides its data: where it moved the session, and when.
        v_ts := clock_timestamp();
        IF v_status <> s.status THEN
            v_data := v_data || jsonb_build_object('status', v_status);
        END IF;
        IF p_type[i] = 'session_started' THEN
            v_data := v_data || jsonb_build_object('started_at', v_ts);
        ELSIF p_type[i] = 'session_ended' THEN
            v_data := v_data || jsonb_build_object(
                'ended_at', v_ts,
                'duration_seconds',
                CASE WHEN s.started_at IS NULL THEN 0
                     ELSE floor(extract(epoch FROM v_ts - s.started_at))::bigint END);
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
