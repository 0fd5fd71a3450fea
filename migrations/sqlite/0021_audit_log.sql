-- The audit log: one row per change made through the API, the web page or the command line,
-- written in the transaction of the change. `objects` holds the ids changed (space-separated,
-- at most `AUDIT_OBJECTS` of them) and `summary` a JSON object of field names and counts, never
-- a value a person could be recognised by. Rows are listed newest first by key.
CREATE TABLE audit_log (
    key        INTEGER PRIMARY KEY,
    plan       INTEGER NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    channel    TEXT    NOT NULL CHECK (channel IN ('api', 'page', 'cli')),
    token_id   TEXT,
    token_name TEXT,
    address    TEXT,
    operation  TEXT    NOT NULL,
    objects    TEXT    NOT NULL,
    summary    TEXT    NOT NULL
);
CREATE INDEX audit_log_by_plan ON audit_log (plan, key);
