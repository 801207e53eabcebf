-- A note event may name any interaction sequence the event validation accepts (up to
-- 2^62, like every seq), and the projection must be able to store each one: an integer
-- column made one valid, acknowledged note break the session's records for good (the
-- event stays in the log, so every catch-up failed on it again). The interaction
-- sequence itself counts events, so it gets the same width as the seq.
ALTER TABLE hub_notes ALTER COLUMN noted_at_interaction_sequence TYPE bigint;
ALTER TABLE hub_interactions ALTER COLUMN interaction_sequence TYPE bigint;
