-- The log's append function, defined here only: applied with CREATE OR REPLACE at every
-- start (storage/migrate.py, under the migration lock), right after the lifecycle rules
-- it reads (hub_lifecycle_rules, filled from hub/lifecycle.py).
--
-- Appends a batch of events in one round trip (group commit); one result row per item,
-- in the order given. Session rows are locked in id order first so that two processes
-- appending to the same sessions cannot deadlock, and so that each session's head read
-- below is the latest committed one.
--
-- Content events (every type without lifecycle rules of its own) do not move a session,
-- so for a session whose items in this batch are all content events the status is
-- checked once and the whole batch is stored by one set-based statement: seqs numbered
-- per session from its head, a key already stored answered through the dedupe index, a
-- key repeated inside the batch answered with its first occurrence's seq, one head
-- update per session. A session with a lifecycle event in the batch is appended item by
-- item, in order, since each item may change what the next one is allowed to do.
--
-- Actors and data arrive as one JSON array each (one value per item, null for none) rather
-- than as jsonb[]: the caller encodes the whole batch in one call, where an array of jsonb
-- costs it an encoder call and several type checks per item. (The jsonb[] form of earlier
-- versions may remain beside it; the caller names the types, so the two never mix.)
CREATE OR REPLACE FUNCTION hub_append_events(
    p_session bigint[], p_type text[], p_actors jsonb, p_datas jsonb, p_dedupe text[]
) RETURNS TABLE (
    out_seq bigint, out_ts timestamptz, out_data jsonb,
    out_duplicate boolean, out_error text, out_status text
) LANGUAGE plpgsql AS $$
DECLARE
    p_actor jsonb[] := ARRAY(SELECT nullif(e.v, 'null') FROM jsonb_array_elements(p_actors)
                                 WITH ORDINALITY AS e(v, o) ORDER BY e.o);
    p_data jsonb[] := ARRAY(SELECT nullif(e.v, 'null') FROM jsonb_array_elements(p_datas)
                                WITH ORDINALITY AS e(v, o) ORDER BY e.o);
    i integer;
    n integer := coalesce(array_length(p_session, 1), 0);
    s record;
    v_existing record;
    v_rules jsonb;  -- 'event type/ends as/from status' -> to status
    v_ruled text[];  -- event types with rules of their own; every other type follows '*'
    v_stepwise bigint[];  -- sessions appended item by item
    v_kind text;
    v_status text;
    v_data jsonb;
    v_ts timestamptz;
    v_seq bigint;
    -- results of the item-by-item part, by position in the batch
    r_seq bigint[] := '{}';
    r_ts timestamptz[] := '{}';
    r_data jsonb[] := '{}';
    r_duplicate boolean[] := '{}';
    r_error text[] := '{}';
    r_status text[] := '{}';
    -- the batch's sessions as locked (before any item of this batch)
    l_id bigint[];
    l_status text[];
    l_head bigint[];
    v_open text[];  -- statuses in which content events are accepted whatever their data
    v_batch_ts timestamptz;  -- the time of every event of the set-based part
BEGIN
    SELECT array_agg(id), array_agg(status), array_agg(head_seq) INTO l_id, l_status, l_head
      FROM (SELECT id, status, head_seq FROM hub_sessions WHERE id = ANY (p_session)
             ORDER BY id FOR UPDATE) AS locked;
    SELECT array_agg(from_status) INTO v_open FROM hub_lifecycle_rules
     WHERE event_type = '*' AND ends_as IS NULL;
    SELECT array_agg(DISTINCT event_type) INTO v_ruled FROM hub_lifecycle_rules WHERE event_type <> '*';
    IF EXISTS (SELECT 1 FROM hub_lifecycle_rules WHERE event_type = '*' AND to_status <> from_status) THEN
        -- Rules under which content events move a session: nothing is set-based then.
        v_stepwise := p_session;
    ELSE
        v_stepwise := ARRAY(SELECT DISTINCT u.pk FROM unnest(p_session, p_type) AS u(pk, t)
                             WHERE u.t = ANY (v_ruled));
    END IF;

    IF cardinality(v_stepwise) > 0 THEN
        -- The lifecycle rules, read once per batch (ends as '*': whatever the data says).
        SELECT jsonb_object_agg(event_type || '/' || coalesce(ends_as, '*') || '/' || from_status, to_status)
          INTO v_rules FROM hub_lifecycle_rules;
        FOR i IN 1 .. n LOOP
            CONTINUE WHEN NOT p_session[i] = ANY (v_stepwise);
            r_duplicate[i] := false;
            SELECT id, status, started_at INTO s FROM hub_sessions WHERE id = p_session[i];
            IF NOT FOUND THEN
                r_error[i] := 'not_found';
                CONTINUE;
            END IF;
            r_status[i] := s.status;

            IF p_dedupe[i] IS NOT NULL THEN
                SELECT e.seq, e.ts, e.data INTO v_existing
                  FROM hub_events e WHERE e.session_pk = s.id AND e.dedupe_key = p_dedupe[i];
                IF FOUND THEN
                    r_seq[i] := v_existing.seq; r_ts[i] := v_existing.ts; r_data[i] := v_existing.data;
                    r_duplicate[i] := true;
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
                r_error[i] := 'conflict';
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
            RETURNING head_seq INTO v_seq;

            INSERT INTO hub_events (session_pk, seq, type, ts, actor, data, dedupe_key)
            VALUES (s.id, v_seq, p_type[i], v_ts, p_actor[i], v_data, p_dedupe[i]);

            r_seq[i] := v_seq; r_ts[i] := v_ts; r_data[i] := v_data; r_status[i] := v_status;
        END LOOP;
    END IF;

    v_batch_ts := clock_timestamp();
    RETURN QUERY
    WITH item AS (
        SELECT u.ord::integer AS ord, u.pk, u.etype, u.actor, coalesce(u.data, '{}'::jsonb) AS data, u.dedupe
          FROM unnest(p_session, p_type, p_actor, p_data, p_dedupe)
               WITH ORDINALITY AS u(pk, etype, actor, data, dedupe, ord)
    ),
    judged AS (
        SELECT it.ord, it.pk, it.etype, it.actor, it.data, it.dedupe,
               h.id IS NOT NULL AS found, h.status, h.head_seq,
               e.seq AS old_seq, e.ts AS old_ts, e.data AS old_data,
               CASE WHEN it.dedupe IS NULL THEN it.ord
                    ELSE min(it.ord) OVER (PARTITION BY it.pk, it.dedupe) END AS first_ord,
               h.status = ANY (v_open) OR EXISTS (
                   SELECT 1 FROM hub_lifecycle_rules r
                    WHERE r.event_type = '*' AND r.from_status = h.status
                      AND r.ends_as = coalesce(it.data->>'status', '')) AS allowed
          FROM item it
          LEFT JOIN unnest(l_id, l_status, l_head) AS h(id, status, head_seq) ON h.id = it.pk
          LEFT JOIN hub_events e ON e.session_pk = it.pk AND e.dedupe_key = it.dedupe
         WHERE it.pk <> ALL (v_stepwise)
    ),
    fresh AS (
        SELECT j.ord, j.pk, j.etype, j.actor, j.data, j.dedupe, v_batch_ts AS ts,
               j.head_seq + row_number() OVER (PARTITION BY j.pk ORDER BY j.ord) AS seq
          FROM judged j
         WHERE j.found AND j.allowed AND j.old_seq IS NULL AND j.first_ord = j.ord
    ),
    stored AS (
        INSERT INTO hub_events (session_pk, seq, type, ts, actor, data, dedupe_key)
        SELECT f.pk, f.seq, f.etype, f.ts, f.actor, f.data, f.dedupe FROM fresh f ORDER BY f.pk, f.seq
    ),
    heads AS (
        -- The head moves once per session; the session's technique is the batch's last.
        UPDATE hub_sessions h SET head_seq = f.last_seq, updated_at = f.last_ts,
               current_technique = coalesce(f.technique, h.current_technique)
          FROM (SELECT pk, max(seq) AS last_seq, max(ts) AS last_ts,
                       (array_agg(data || jsonb_build_object('changed_at', ts) ORDER BY seq DESC)
                          FILTER (WHERE etype = 'technique_changed'))[1] AS technique
                  FROM fresh GROUP BY pk) f
         WHERE h.id = f.pk
    )
    SELECT CASE WHEN j.ord IS NULL THEN r_seq[it.ord] ELSE coalesce(j.old_seq, f.seq) END,
           CASE WHEN j.ord IS NULL THEN r_ts[it.ord] ELSE coalesce(j.old_ts, f.ts) END,
           CASE WHEN j.ord IS NULL THEN r_data[it.ord]
                WHEN j.old_seq IS NOT NULL THEN j.old_data
                WHEN f.ord = j.ord THEN NULL  -- stored as given
                ELSE f.data END,
           CASE WHEN j.ord IS NULL THEN r_duplicate[it.ord]
                ELSE j.old_seq IS NOT NULL OR (f.ord IS NOT NULL AND f.ord <> j.ord) END,
           CASE WHEN j.ord IS NULL THEN r_error[it.ord]
                WHEN NOT j.found THEN 'not_found'
                WHEN j.old_seq IS NULL AND f.ord IS NULL THEN 'conflict' END,
           CASE WHEN j.ord IS NULL THEN r_status[it.ord] ELSE j.status END
      FROM item it
      LEFT JOIN judged j ON j.ord = it.ord
      LEFT JOIN fresh f ON f.ord = j.first_ord
     ORDER BY it.ord;
END;
$$;
