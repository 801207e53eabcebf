-- Seed 000's session templates and its many-to-many link from sessions to life events,
-- generalised as topics. Both belong to an account.

CREATE TABLE hub_session_templates (
    id                            bigserial PRIMARY KEY,
    account_id                    text NOT NULL REFERENCES hub_accounts (account_id),
    template_name                 text NOT NULL,
    template_description          text,
    session_type                  text NOT NULL DEFAULT 'live',
    suggested_for_event_types     text[] NOT NULL DEFAULT '{}',
    default_intention             text,
    default_success_indicators    jsonb,
    default_completion_indicators jsonb,
    default_constraints           text[],
    default_procedure_notes       text,
    default_duration_minutes      integer CHECK (default_duration_minutes BETWEEN 1 AND 1440),
    defaults                      jsonb NOT NULL DEFAULT '{}',
    is_active                     boolean NOT NULL DEFAULT true,
    created_by                    text,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    updated_at                    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, template_name)
);
CREATE INDEX hub_session_templates_account ON hub_session_templates (account_id, id);

CREATE TABLE hub_topics (
    id          bigserial PRIMARY KEY,
    account_id  text NOT NULL REFERENCES hub_accounts (account_id),
    name        text NOT NULL,
    topic_type  text,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name),
    UNIQUE (account_id, id)
);

CREATE TABLE hub_session_topics (
    session_pk       bigint NOT NULL REFERENCES hub_sessions (id) ON DELETE CASCADE,
    topic_id         bigint NOT NULL REFERENCES hub_topics (id) ON DELETE CASCADE,
    is_primary_focus boolean NOT NULL DEFAULT false,
    coverage_level   text CHECK (coverage_level IN ('introduction', 'exploration', 'deep_dive', 'completion')),
    notes            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_pk, topic_id)
);
CREATE INDEX hub_session_topics_topic ON hub_session_topics (topic_id);
-- One primary focus per session.
CREATE UNIQUE INDEX hub_session_topics_primary ON hub_session_topics (session_pk) WHERE is_primary_focus;
