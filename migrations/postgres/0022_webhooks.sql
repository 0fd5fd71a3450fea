-- Webhooks: a plan's subscriptions to its events, the outbox of events, and one delivery per
-- event and subscribed webhook. Events and deliveries are written in the transaction of the
-- change they describe, so a committed change always has them and a rolled-back one never.
CREATE TABLE webhooks (
    key           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan          BIGINT  NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
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
    failures      BIGINT  NOT NULL DEFAULT 0,
    failing_since BIGINT,
    created_at    BIGINT  NOT NULL,
    modified_at   BIGINT  NOT NULL
);
CREATE INDEX webhooks_by_plan ON webhooks (plan, key);

CREATE TABLE webhook_events (
    key        BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan       BIGINT  NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
    id         TEXT    NOT NULL UNIQUE,
    type       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);

-- Each webhook receives the events of one object (`object`) in order: only the oldest pending
-- delivery of an object is claimed.
CREATE TABLE webhook_deliveries (
    key          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook      BIGINT  NOT NULL REFERENCES webhooks (key) ON DELETE CASCADE,
    event        BIGINT  NOT NULL REFERENCES webhook_events (key) ON DELETE CASCADE,
    object       TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     BIGINT  NOT NULL DEFAULT 0,
    next_at      BIGINT  NOT NULL,
    -- Retries stop here: 24 hours after the event, or after a redelivery was asked for.
    expires_at   BIGINT  NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    response_status BIGINT,
    error        TEXT,
    latency_ms   BIGINT,
    delivered_at BIGINT,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_of_object ON webhook_deliveries (webhook, object, key)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, key);
CREATE UNIQUE INDEX webhook_deliveries_by_event ON webhook_deliveries (event, webhook);
