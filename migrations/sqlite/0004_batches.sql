-- Batches: messages to groups and numbers, resolved to recipients when they are sent.
CREATE TABLE batches (
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
    PRIMARY KEY (plan_id, id)
);
CREATE INDEX batches_due ON batches (status, send_at);
CREATE INDEX batches_by_created ON batches (plan_id, created_at, id);
CREATE INDEX batches_by_reference ON batches (plan_id, client_reference);

-- The recipients a batch resolved to, recorded when it is sent: one row per chunk handed to the
-- sender, its numbers joined by newlines in sending order (a million recipients are a thousand
-- rows, not a million).
CREATE TABLE batch_recipients (
    plan_id  TEXT   NOT NULL,
    batch_id TEXT   NOT NULL,
    chunk    BIGINT NOT NULL,
    count    BIGINT NOT NULL,
    phones   TEXT   NOT NULL,
    PRIMARY KEY (plan_id, batch_id, chunk),
    FOREIGN KEY (plan_id, batch_id) REFERENCES batches (plan_id, id) ON DELETE CASCADE
);

-- Chunks handed to the sender: 'handing' is written before the hand-off and 'done' after it, so
-- that a crash in between is known and reconciled with the sender instead of sent again.
CREATE TABLE batch_chunks (
    plan_id      TEXT   NOT NULL,
    batch_id     TEXT   NOT NULL,
    chunk        BIGINT NOT NULL,
    state        TEXT   NOT NULL CHECK (state IN ('handing', 'done')),
    -- Where the sender can look for what it was given (JSON; the sender's own shape).
    sender_state TEXT   NOT NULL,
    handed_at    BIGINT NOT NULL,
    done_at      BIGINT,
    PRIMARY KEY (plan_id, batch_id, chunk),
    FOREIGN KEY (plan_id, batch_id) REFERENCES batches (plan_id, id) ON DELETE CASCADE
);
