-- Webhooks: a plan's subscriptions to its events, and the outbox: one delivery per event and
-- subscribed webhook, written in the transaction of the change it describes, so that a
-- committed change always has its deliveries and a rolled-back one never. The event's body is
-- kept with each delivery (one statement writes an event for every webhook that wants it; no
-- event is written when none does).
CREATE TABLE webhooks (
    key           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan          BIGINT  NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
    id            TEXT    NOT NULL UNIQUE,
    url           TEXT    NOT NULL,
    -- The event types it wants, one bit each (`EventType::bit`): found with `events & bit`.
    events        BIGINT  NOT NULL,
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

-- Each webhook receives the events of one object (`object`) in order: only the oldest pending
-- delivery of an object is claimed. `event_id` is a ULID: a webhook's log is listed newest
-- first by it.
CREATE TABLE webhook_deliveries (
    key          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook      BIGINT  NOT NULL REFERENCES webhooks (key) ON DELETE CASCADE,
    event_id     TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    object       TEXT    NOT NULL,
    body         TEXT    NOT NULL,
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
CREATE UNIQUE INDEX webhook_deliveries_by_event ON webhook_deliveries (webhook, event_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_of_object ON webhook_deliveries (webhook, object, key)
    WHERE status = 'pending';
