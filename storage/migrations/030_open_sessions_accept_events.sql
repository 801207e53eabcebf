-- Content events (prompts, responses, HRV, notes, ...) are accepted from the moment a
-- session is scheduled until it ends: a room is open before the instructor starts it
-- (participants send a baseline HRV, instructors set the first technique). Only an ended
-- (completed or cancelled) session refuses them. Lifecycle rules are unchanged.

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
