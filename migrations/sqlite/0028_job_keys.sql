-- Storage v2: imports and exports (the jobs) get an integer key, and the rows kept per job —
-- the uploaded file's pieces, the rows an import rejected (one row each) and the export's
-- pieces — name their job by it instead of the plan's 32-character id and the job's
-- 26-character id. The jobs' public ids, and their plans', stay on `imports` and `exports` and
-- on the wire.
-- Foreign keys are enforced during this migration: the old tables that refer to `imports` and
-- `exports` are dropped before them.

CREATE TABLE imports_v2 (
    key          INTEGER PRIMARY KEY,
    plan_id      TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id           TEXT   NOT NULL,
    status       TEXT   NOT NULL CHECK (status IN ('previewed', 'running', 'done', 'failed')),
    file_name    TEXT,
    file_size    BIGINT NOT NULL,
    -- JSON: what the file was detected as, and the preview shown to the client.
    detected     TEXT   NOT NULL,
    preview      TEXT   NOT NULL,
    total_rows   BIGINT NOT NULL,
    -- JSON: the commit request (mapping, region, groups, mode).
    settings     TEXT,
    -- Every commit attempt takes a new number; only the attempt holding the lease may finish.
    attempt      BIGINT NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  BIGINT,
    rows_read    BIGINT NOT NULL DEFAULT 0,
    report       TEXT,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    completed_at BIGINT
);
INSERT INTO imports_v2 (
    plan_id, id, status, file_name, file_size, detected, preview, total_rows, settings,
    attempt, lease_owner, lease_until, rows_read, report, error, created_at, modified_at,
    completed_at)
SELECT
    plan_id, id, status, file_name, file_size, detected, preview, total_rows, settings,
    attempt, lease_owner, lease_until, rows_read, report, error, created_at, modified_at,
    completed_at
FROM imports ORDER BY created_at, plan_id, id;

-- Exports: written by a job into pieces any instance can stream back.
CREATE TABLE exports_v2 (
    key          INTEGER PRIMARY KEY,
    plan_id      TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id           TEXT   NOT NULL,
    status       TEXT   NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    format       TEXT   NOT NULL,
    -- JSON: which contacts (all, a group, a filter).
    selection    TEXT   NOT NULL,
    -- The instance writing it; an export whose claim lapsed was interrupted.
    lease_owner  TEXT,
    lease_until  BIGINT,
    total_rows   BIGINT,
    rows_written BIGINT NOT NULL DEFAULT 0,
    file_size    BIGINT,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    completed_at BIGINT
);
INSERT INTO exports_v2 (
    plan_id, id, status, format, selection, lease_owner, lease_until, total_rows,
    rows_written, file_size, error, created_at, modified_at, completed_at)
SELECT
    plan_id, id, status, format, selection, lease_owner, lease_until, total_rows,
    rows_written, file_size, error, created_at, modified_at, completed_at
FROM exports ORDER BY created_at, plan_id, id;

CREATE TABLE import_files_v2 (
    import INTEGER NOT NULL REFERENCES imports_v2 (key) ON DELETE CASCADE,
    seq    BIGINT  NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (import, seq)
);
INSERT INTO import_files_v2 (import, seq, data)
SELECT i.key, f.seq, f.data
FROM import_files f JOIN imports_v2 i ON i.plan_id = f.plan_id AND i.id = f.import_id;

-- Rows of the file that were not imported, with the reason; written with the import.
CREATE TABLE import_errors_v2 (
    import     INTEGER NOT NULL REFERENCES imports_v2 (key) ON DELETE CASCADE,
    row_number BIGINT  NOT NULL,
    reason     TEXT    NOT NULL,
    PRIMARY KEY (import, row_number)
) WITHOUT ROWID;
INSERT INTO import_errors_v2 (import, row_number, reason)
SELECT i.key, e.row_number, e.reason
FROM import_errors e JOIN imports_v2 i ON i.plan_id = e.plan_id AND i.id = e.import_id;

CREATE TABLE export_files_v2 (
    export INTEGER NOT NULL REFERENCES exports_v2 (key) ON DELETE CASCADE,
    seq    BIGINT  NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (export, seq)
);
INSERT INTO export_files_v2 (export, seq, data)
SELECT x.key, f.seq, f.data
FROM export_files f JOIN exports_v2 x ON x.plan_id = f.plan_id AND x.id = f.export_id;

DROP TABLE import_files;
DROP TABLE import_errors;
DROP TABLE export_files;
DROP TABLE imports;
DROP TABLE exports;
-- Renaming a table rewrites the foreign keys that name it.
ALTER TABLE imports_v2 RENAME TO imports;
ALTER TABLE exports_v2 RENAME TO exports;
ALTER TABLE import_files_v2 RENAME TO import_files;
ALTER TABLE import_errors_v2 RENAME TO import_errors;
ALTER TABLE export_files_v2 RENAME TO export_files;

CREATE UNIQUE INDEX imports_by_id ON imports (plan_id, id);
CREATE INDEX imports_by_created ON imports (plan_id, created_at);
CREATE UNIQUE INDEX exports_by_id ON exports (plan_id, id);
CREATE INDEX exports_by_created ON exports (plan_id, created_at);
