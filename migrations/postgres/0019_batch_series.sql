-- Recurring sends: a series makes a batch at each occurrence of its rule (RFC 5545 RRULE, read
-- in `time_zone` from `starts_at`), copying what every occurrence sends. `next_at` is the next
-- occurrence to make (NULL once none is left); an instance makes it when it is due, moving
-- `next_at` on in the same transaction, so that each occurrence is made once.
CREATE TABLE batch_series (
    plan_id          TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id               TEXT   NOT NULL,
    status           TEXT   NOT NULL
        CHECK (status IN ('active', 'paused', 'canceled', 'finished')),
    rule             TEXT   NOT NULL,
    time_zone        TEXT   NOT NULL,
    starts_at        BIGINT NOT NULL,
    ends_at          BIGINT,
    targets          TEXT   NOT NULL,
    excludes         TEXT   NOT NULL,
    sender           TEXT,
    body             TEXT   NOT NULL,
    client_reference TEXT,
    parameters       TEXT,
    encoding         TEXT   NOT NULL,
    purpose          TEXT   NOT NULL,
    -- Each occurrence's expire_at, as a delay after its send time.
    expire_after     BIGINT,
    occurrences      BIGINT NOT NULL DEFAULT 0,
    last_at          BIGINT,
    next_at          BIGINT,
    created_at       BIGINT NOT NULL,
    modified_at      BIGINT NOT NULL,
    PRIMARY KEY (plan_id, id)
);
CREATE INDEX batch_series_due ON batch_series (status, next_at);
CREATE INDEX batch_series_by_created ON batch_series (plan_id, created_at, id);

-- The batches a series made, each once.
ALTER TABLE batches ADD COLUMN series_id TEXT;
ALTER TABLE batches ADD COLUMN occurrence BIGINT;
CREATE UNIQUE INDEX batches_by_series ON batches (plan_id, series_id, occurrence)
    WHERE series_id IS NOT NULL;
