-- Webhooks: a plan's subscriptions to its events, the outbox of events, and one delivery per
-- event and subscribed webhook. Events and deliveries are written in the transaction of the
-- change they describe, so a committed change always has them and a rolled-back one never.
CREATE TABLE webhooks (
    key           INTEGER PRIMARY KEY,
    plan          INTEGER NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
    id            TEXT    NOT NULL UNIQUE,
    url           TEXT    NOT NULL,
    -- The event types it wants, comma-separated, with a comma at each end (`,a,b,`) so that
    -- one type is found with LIKE '%,a,%'.
    events        TEXT    NOT NULL,
    description   TEXT,
    secret        TEXT    NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    -- The current streak of failed attempts: how many, and since when (reset by a success).
    failures      INTEGER NOT NULL DEFAULT 0,
    failing_since INTEGER,
    created_at    INTEGER NOT NULL,
    modified_at   INTEGER NOT NULL
);
CREATE INDEX webhooks_by_plan ON webhooks (plan, key);

CREATE TABLE webhook_events (
    key        INTEGER PRIMARY KEY,
    plan       INTEGER NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
    id         TEXT    NOT NULL UNIQUE,
    type       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- Each webhook receives the events of one object (`object`) in order: only the oldest pending
-- delivery of an object is claimed.
CREATE TABLE webhook_deliveries (
    key          INTEGER PRIMARY KEY,
    webhook      INTEGER NOT NULL REFERENCES webhooks (key) ON DELETE CASCADE,
    event        INTEGER NOT NULL REFERENCES webhook_events (key) ON DELETE CASCADE,
    object       TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    -- Retries stop here: 24 hours after the event, or after a redelivery was asked for.
    expires_at   INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    response_status INTEGER,
    error        TEXT,
    latency_ms   INTEGER,
    delivered_at INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_of_object ON webhook_deliveries (webhook, object, key)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, key);
CREATE UNIQUE INDEX webhook_deliveries_by_event ON webhook_deliveries (event, webhook);
