-- What a session leaves behind (seeds 000, 001, 002). Every row belongs to a session
-- (session_pk), and through it to the session's account.
--
-- Rows with a `seq` are projections of the event log (hub/records/projector.py): the
-- event's seq is their idempotency key, and they can be deleted and rebuilt from the log
-- at any time. Rows without one were written over HTTP and are not in the log.

CREATE TABLE hub_projections (
    session_pk    bigint PRIMARY KEY REFERENCES hub_sessions (id) ON DELETE CASCADE,
    projected_seq bigint NOT NULL DEFAULT 0,
    state         jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hub_interactions (
    session_pk           bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    seq                  bigint NOT NULL,
    interaction_sequence integer NOT NULL,
    interaction_type     text NOT NULL CHECK (interaction_type IN ('prompt', 'response')),
    content              text NOT NULL,
    prompt_category      text,
    response_method      text CHECK (response_method IN ('text', 'voice', 'skip')),
    prompt_seq           bigint,
    topic                text,
    duration_seconds     integer,
    actor_user_id        text,
    actor_name           text,
    actor_role           text,
    ts                   timestamptz NOT NULL,
    PRIMARY KEY (session_pk, seq),
    UNIQUE (session_pk, interaction_sequence)
);

CREATE TABLE hub_notes (
    id                            bigserial PRIMARY KEY,
    session_pk                    bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    seq                           bigint,
    note_type                     text NOT NULL DEFAULT 'observation'
        CHECK (note_type IN ('observation', 'concern', 'insight', 'technical')),
    note_content                  text NOT NULL CHECK (length(note_content) BETWEEN 1 AND 10000),
    noted_at_interaction_sequence integer,
    is_important                  boolean NOT NULL DEFAULT false,
    requires_followup             boolean NOT NULL DEFAULT false,
    noted_by                      text,
    noted_by_role                 text,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_pk, seq)
);
CREATE INDEX hub_notes_session ON hub_notes (session_pk, id);

-- Seed 002: at most one feedback of each kind per user and message.
CREATE TABLE hub_feedback (
    id            bigserial PRIMARY KEY,
    session_pk    bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    seq           bigint,
    message_seq   bigint NOT NULL,
    user_id       text NOT NULL,
    feedback_type text NOT NULL CHECK (feedback_type IN ('like', 'dislike', 'regenerate')),
    comment       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_pk, message_seq, user_id, feedback_type),
    UNIQUE (session_pk, seq)
);
CREATE INDEX hub_feedback_session ON hub_feedback (session_pk, id);

CREATE TABLE hub_summaries (
    session_pk     bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    seq            bigint NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('periodic', 'final')),
    response_count integer NOT NULL,
    summary_text   text NOT NULL,
    next_plan_text text NOT NULL,
    outline        jsonb NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (session_pk, seq)
);

-- Seed 000's artifacts: provisional until approved, and approval carries its time.
CREATE TABLE hub_artifacts (
    id                    bigserial PRIMARY KEY,
    session_pk            bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    artifact_type         text NOT NULL,
    artifact_name         text,
    content               text,
    structured_data       jsonb,
    topic                 text,
    is_provisional        boolean NOT NULL DEFAULT true,
    is_approved           boolean NOT NULL DEFAULT false,
    approved_at           timestamptz,
    approved_by           text,
    included_in_synthesis boolean NOT NULL DEFAULT false,
    created_by            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (is_approved = (approved_at IS NOT NULL)),
    CHECK (NOT (is_provisional AND is_approved))
);
CREATE INDEX hub_artifacts_session ON hub_artifacts (session_pk, id);
