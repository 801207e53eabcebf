-- The session lifecycle as rows, read by the append function (storage/sql/append.sql).
-- Its content is not written here: the hub replaces it at every start from the one
-- table in hub/lifecycle.py (`rule_rows`), so the SQL and the Python cannot drift.
--
-- A row: an event of `event_type` ('*': any type without rows of its own) is accepted
-- in `from_status` and moves the session to `to_status`; `ends_as`, when not NULL,
-- narrows the row to events whose data.status is that value ('' when it has none).
CREATE TABLE hub_lifecycle_rules (
    event_type  text NOT NULL,
    ends_as     text,
    from_status text NOT NULL,
    to_status   text NOT NULL
);
