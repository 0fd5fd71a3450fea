-- Personalized bodies and SMS parts. A batch keeps its `parameters` (Sinch's JSON shape) and the
-- encoding asked for; resolving it records the encoding used ('gsm7', 'ucs2', or 'mixed' when
-- personalized messages differ), the parts, and who was left out and why.
ALTER TABLE batches ADD COLUMN parameters TEXT;
ALTER TABLE batches ADD COLUMN encoding TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE batches ADD COLUMN encoding_used TEXT;
ALTER TABLE batches ADD COLUMN parts_total BIGINT;
ALTER TABLE batches ADD COLUMN parts_min BIGINT;
ALTER TABLE batches ADD COLUMN parts_max BIGINT;
ALTER TABLE batches ADD COLUMN skipped_count BIGINT;

-- Per recipient of a chunk, when a batch is personalized: its parts (comma-separated, in
-- sending order; NULL when every message of the batch has the same parts) and the values of the
-- body's placeholders (a JSON array of arrays), so that a chunk resumed after a crash sends the
-- very text it was resolved to.
ALTER TABLE batch_recipients ADD COLUMN parts TEXT;
ALTER TABLE batch_recipients ADD COLUMN placeholder_values TEXT;

-- Recipients left out when the batch was resolved, in blocks of numbers joined by newlines,
-- one reason (and its detail, such as the placeholder that had no value) per block.
CREATE TABLE batch_skips (
    plan_id  TEXT   NOT NULL,
    batch_id TEXT   NOT NULL,
    block    BIGINT NOT NULL,
    reason   TEXT   NOT NULL,
    detail   TEXT,
    count    BIGINT NOT NULL,
    phones   TEXT   NOT NULL,
    PRIMARY KEY (plan_id, batch_id, block),
    FOREIGN KEY (plan_id, batch_id) REFERENCES batches (plan_id, id) ON DELETE CASCADE
);
