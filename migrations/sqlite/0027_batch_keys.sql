-- Storage v2: batches get an integer key, and the rows kept per batch — its recorded recipients,
-- its chunks, its skipped recipients and its delivery reports — name their batch by that key
-- instead of the plan's 32-character id and the batch's 26-character id. A delivery report is
-- one row per recipient, so its key was most of its size; reports are now a table without
-- rowid, keyed by (batch, phone) once instead of twice. The batch's public id, and its plan's,
-- stay on `batches` (unique) and on the wire. Keys follow creation order.
-- Foreign keys are enforced during this migration: the old tables that refer to `batches` are
-- dropped before it.

CREATE TABLE batches_v2 (
    key              INTEGER PRIMARY KEY,
    plan_id          TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id               TEXT   NOT NULL,
    status           TEXT   NOT NULL
        CHECK (status IN ('scheduled', 'sending', 'sent', 'failed', 'canceled')),
    -- JSON arrays as the client gave them (group ids and E.164 numbers).
    targets          TEXT   NOT NULL,
    excludes         TEXT   NOT NULL,
    sender           TEXT,
    body             TEXT   NOT NULL,
    client_reference TEXT,
    send_at          BIGINT NOT NULL,
    expire_at        BIGINT,
    -- Set when the recipients are resolved (at send time) and never again.
    recipient_count  BIGINT,
    chunk_size       BIGINT,
    resolved_at      BIGINT,
    sent_count       BIGINT NOT NULL DEFAULT 0,
    -- The instance sending the batch, and until when its claim holds without a renewal.
    lease_owner      TEXT,
    lease_until      BIGINT,
    error            TEXT,
    created_at       BIGINT NOT NULL,
    modified_at      BIGINT NOT NULL,
    completed_at     BIGINT,
    parameters       TEXT,
    encoding         TEXT   NOT NULL DEFAULT 'auto',
    encoding_used    TEXT,
    parts_total      BIGINT,
    parts_min        BIGINT,
    parts_max        BIGINT,
    skipped_count    BIGINT,
    purpose          TEXT   NOT NULL DEFAULT 'marketing',
    held_count       BIGINT NOT NULL DEFAULT 0,
    held_until       BIGINT,
    chunk_count      BIGINT,
    series_id        TEXT,
    occurrence       BIGINT
);
INSERT INTO batches_v2 (
    plan_id, id, status, targets, excludes, sender, body, client_reference, send_at,
    expire_at, recipient_count, chunk_size, resolved_at, sent_count, lease_owner,
    lease_until, error, created_at, modified_at, completed_at, parameters, encoding,
    encoding_used, parts_total, parts_min, parts_max, skipped_count, purpose, held_count,
    held_until, chunk_count, series_id, occurrence)
SELECT
    plan_id, id, status, targets, excludes, sender, body, client_reference, send_at,
    expire_at, recipient_count, chunk_size, resolved_at, sent_count, lease_owner,
    lease_until, error, created_at, modified_at, completed_at, parameters, encoding,
    encoding_used, parts_total, parts_min, parts_max, skipped_count, purpose, held_count,
    held_until, chunk_count, series_id, occurrence
FROM batches ORDER BY created_at, plan_id, id;

CREATE TABLE batch_recipients_v2 (
    batch              INTEGER NOT NULL REFERENCES batches_v2 (key) ON DELETE CASCADE,
    chunk              BIGINT  NOT NULL,
    count              BIGINT  NOT NULL,
    phones             TEXT    NOT NULL,
    parts              TEXT,
    placeholder_values TEXT,
    time_zones         TEXT,
    held_until         BIGINT,
    PRIMARY KEY (batch, chunk)
);
INSERT INTO batch_recipients_v2 (batch, chunk, count, phones, parts, placeholder_values,
                                 time_zones, held_until)
SELECT b.key, r.chunk, r.count, r.phones, r.parts, r.placeholder_values, r.time_zones,
       r.held_until
FROM batch_recipients r JOIN batches_v2 b ON b.plan_id = r.plan_id AND b.id = r.batch_id
ORDER BY 1, 2;

-- 'handing' is written before a chunk is handed to the sender and 'done' after it, so that a
-- crash in between is reconciled with the sender instead of sent again.
CREATE TABLE batch_chunks_v2 (
    batch        INTEGER NOT NULL REFERENCES batches_v2 (key) ON DELETE CASCADE,
    chunk        BIGINT  NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('handing', 'done')),
    sender_state TEXT    NOT NULL,
    handed_at    BIGINT  NOT NULL,
    done_at      BIGINT,
    PRIMARY KEY (batch, chunk)
) WITHOUT ROWID;
INSERT INTO batch_chunks_v2 (batch, chunk, state, sender_state, handed_at, done_at)
SELECT b.key, c.chunk, c.state, c.sender_state, c.handed_at, c.done_at
FROM batch_chunks c JOIN batches_v2 b ON b.plan_id = c.plan_id AND b.id = c.batch_id
ORDER BY 1, 2;

CREATE TABLE batch_skips_v2 (
    batch  INTEGER NOT NULL REFERENCES batches_v2 (key) ON DELETE CASCADE,
    block  BIGINT  NOT NULL,
    reason TEXT    NOT NULL,
    detail TEXT,
    count  BIGINT  NOT NULL,
    phones TEXT    NOT NULL,
    PRIMARY KEY (batch, block)
);
INSERT INTO batch_skips_v2 (batch, block, reason, detail, count, phones)
SELECT b.key, s.block, s.reason, s.detail, s.count, s.phones
FROM batch_skips s JOIN batches_v2 b ON b.plan_id = s.plan_id AND b.id = s.batch_id
ORDER BY 1, 2;

-- Reports of a batch that no longer exists are dropped with it (before, nothing tied them).
CREATE TABLE delivery_reports_v2 (
    batch       INTEGER NOT NULL REFERENCES batches_v2 (key) ON DELETE CASCADE,
    phone       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    code        INTEGER,
    final       BOOLEAN NOT NULL,
    at          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (batch, phone)
) WITHOUT ROWID;
INSERT INTO delivery_reports_v2 (batch, phone, status, code, final, at, received_at)
SELECT b.key, d.phone, d.status, d.code, d.final, d.at, d.received_at
FROM delivery_reports d JOIN batches_v2 b ON b.plan_id = d.plan_id AND b.id = d.batch_id
ORDER BY 1, 2;

DROP TABLE batch_recipients;
DROP TABLE batch_chunks;
DROP TABLE batch_skips;
DROP TABLE delivery_reports;
DROP TABLE batches;
-- Renaming a table rewrites the foreign keys that name it.
ALTER TABLE batches_v2 RENAME TO batches;
ALTER TABLE batch_recipients_v2 RENAME TO batch_recipients;
ALTER TABLE batch_chunks_v2 RENAME TO batch_chunks;
ALTER TABLE batch_skips_v2 RENAME TO batch_skips;
ALTER TABLE delivery_reports_v2 RENAME TO delivery_reports;

CREATE UNIQUE INDEX batches_by_id ON batches (plan_id, id);
CREATE INDEX batches_due ON batches (status, send_at);
CREATE INDEX batches_by_created ON batches (plan_id, created_at, id);
CREATE INDEX batches_by_reference ON batches (plan_id, client_reference);
CREATE INDEX batches_by_resolution ON batches (plan_id, resolved_at);
CREATE UNIQUE INDEX batches_by_series ON batches (plan_id, series_id, occurrence)
    WHERE series_id IS NOT NULL;
