-- Imports: an uploaded file is kept (in pieces, so that any instance can read it) until it is
-- committed; committing writes every contact of the file in one transaction, together with the
-- status 'done' and the report, so that an import is either whole or absent.
CREATE TABLE imports (
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
    completed_at BIGINT,
    PRIMARY KEY (plan_id, id)
);
CREATE INDEX imports_by_created ON imports (plan_id, created_at);

CREATE TABLE import_files (
    plan_id   TEXT   NOT NULL,
    import_id TEXT   NOT NULL,
    seq       BIGINT NOT NULL,
    data      BLOB  NOT NULL,
    PRIMARY KEY (plan_id, import_id, seq),
    FOREIGN KEY (plan_id, import_id) REFERENCES imports (plan_id, id) ON DELETE CASCADE
);

-- Rows of the file that were not imported, with the reason; written with the import.
CREATE TABLE import_errors (
    plan_id    TEXT   NOT NULL,
    import_id  TEXT   NOT NULL,
    row_number BIGINT NOT NULL,
    reason     TEXT   NOT NULL,
    PRIMARY KEY (plan_id, import_id, row_number),
    FOREIGN KEY (plan_id, import_id) REFERENCES imports (plan_id, id) ON DELETE CASCADE
);

-- Exports: written by a job into pieces any instance can stream back.
CREATE TABLE exports (
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
    completed_at BIGINT,
    PRIMARY KEY (plan_id, id)
);
CREATE INDEX exports_by_created ON exports (plan_id, created_at);

CREATE TABLE export_files (
    plan_id   TEXT   NOT NULL,
    export_id TEXT   NOT NULL,
    seq       BIGINT NOT NULL,
    data      BLOB  NOT NULL,
    PRIMARY KEY (plan_id, export_id, seq),
    FOREIGN KEY (plan_id, export_id) REFERENCES exports (plan_id, id) ON DELETE CASCADE
);
