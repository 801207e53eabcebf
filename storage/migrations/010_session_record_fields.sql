-- Session record fields of seeds 000, 001, 002 and 004.
--
-- The create endpoint already keeps every non-core field of a session in
-- hub_sessions.attributes, so that stays the one place a session's record fields live
-- (intention, indicators, constraints, procedure notes, summary, next plan, tags,
-- state, follow-up settings, ...). The fields that are queried, constrained or
-- referenced get a typed generated column: a check, an index and a foreign key then
-- hold for every writer, and no field can disagree with its column.

ALTER TABLE hub_sessions
    ADD COLUMN parent_session_id text
        GENERATED ALWAYS AS (attributes->>'parent_session_id') STORED,
    ADD COLUMN owner_user_id text
        GENERATED ALWAYS AS (coalesce(attributes->>'owner_user_id', created_by)) STORED,
    ADD COLUMN success_rating integer
        GENERATED ALWAYS AS ((attributes->>'success_rating')::integer) STORED,
    ADD COLUMN completion_percentage integer
        GENERATED ALWAYS AS ((attributes->>'completion_percentage')::integer) STORED,
    ADD COLUMN follow_up_enabled boolean
        GENERATED ALWAYS AS (coalesce((attributes->>'follow_up_enabled')::boolean, false)) STORED;

ALTER TABLE hub_sessions
    ADD CONSTRAINT hub_sessions_success_rating CHECK (success_rating BETWEEN 1 AND 5),
    ADD CONSTRAINT hub_sessions_completion_percentage CHECK (completion_percentage BETWEEN 0 AND 100),
    ADD CONSTRAINT hub_sessions_state_object
        CHECK (attributes->'state' IS NULL OR jsonb_typeof(attributes->'state') = 'object'),
    ADD CONSTRAINT hub_sessions_not_own_parent CHECK (parent_session_id <> session_id),
    -- The parent is looked up within the child's account: a hierarchy never spans accounts.
    ADD CONSTRAINT hub_sessions_parent FOREIGN KEY (account_id, parent_session_id)
        REFERENCES hub_sessions (account_id, session_id);

CREATE INDEX hub_sessions_children ON hub_sessions (account_id, parent_session_id, id)
    WHERE parent_session_id IS NOT NULL;
CREATE INDEX hub_sessions_owner ON hub_sessions (account_id, owner_user_id, id);
CREATE INDEX hub_sessions_follow_ups ON hub_sessions (account_id, id)
    WHERE follow_up_enabled AND status = 'in_progress';

-- Seed 001's StateTransition: every change of attributes.state, whoever makes it, is
-- recorded by the trigger below with the changed keys' previous and new values.
CREATE TABLE hub_state_transitions (
    id              bigserial PRIMARY KEY,
    session_pk      bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    trigger_type    text NOT NULL,
    trigger_id      text,
    transition_data jsonb NOT NULL,
    previous_values jsonb NOT NULL,
    new_values      jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX hub_state_transitions_session ON hub_state_transitions (session_pk, id);

-- The writer names the trigger with set_config('hub.state_trigger_type' / '_id', ..., true)
-- inside its transaction; a write that does not say is recorded as a user action.
CREATE FUNCTION hub_record_state_transition() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_old jsonb := '{}';
    v_new jsonb := coalesce(NEW.attributes->'state', '{}');
    v_prev jsonb := '{}';
    v_next jsonb := '{}';
    v_changed text[] := '{}';
    v_key text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        v_old := coalesce(OLD.attributes->'state', '{}');
    END IF;
    IF v_old = v_new THEN
        RETURN NULL;
    END IF;
    FOR v_key IN
        SELECT k FROM (SELECT jsonb_object_keys(v_old) AS k
                       UNION SELECT jsonb_object_keys(v_new)) AS keys ORDER BY k
    LOOP
        IF (v_old->v_key) IS DISTINCT FROM (v_new->v_key) THEN
            v_changed := v_changed || v_key;
            IF v_old ? v_key THEN v_prev := v_prev || jsonb_build_object(v_key, v_old->v_key); END IF;
            IF v_new ? v_key THEN v_next := v_next || jsonb_build_object(v_key, v_new->v_key); END IF;
        END IF;
    END LOOP;
    INSERT INTO hub_state_transitions
        (session_pk, trigger_type, trigger_id, transition_data, previous_values, new_values)
    VALUES (
        NEW.id,
        coalesce(nullif(current_setting('hub.state_trigger_type', true), ''),
                 CASE WHEN TG_OP = 'INSERT' THEN 'session_created' ELSE 'user_action' END),
        nullif(current_setting('hub.state_trigger_id', true), ''),
        jsonb_build_object('changed', to_jsonb(v_changed)),
        v_prev,
        v_next
    );
    RETURN NULL;
END;
$$;

CREATE TRIGGER hub_sessions_state_transition
    AFTER INSERT OR UPDATE OF attributes ON hub_sessions
    FOR EACH ROW EXECUTE FUNCTION hub_record_state_transition();
