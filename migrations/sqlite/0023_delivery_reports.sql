-- Delivery reports: the last state the SMS provider reported for each recipient of a batch (a
-- final state is never replaced by an earlier, intermediate one).
CREATE TABLE delivery_reports (
    plan_id     TEXT    NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    batch_id    TEXT    NOT NULL,
    phone       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    code        INTEGER,
    final       BOOLEAN NOT NULL,
    at          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (plan_id, batch_id, phone)
);

-- Carriers opt people out too: a delivery report whose code says the recipient opted out is a
-- consent change with the source `carrier`; an erasure leaves one anonymous row, `erase`; a
-- double opt-in writes its request, its confirmation and its expiry (source `system`).
-- SQLite changes a CHECK by copying the table.
CREATE TABLE consent_events_v2 (
    plan_id    TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id         TEXT   NOT NULL,
    contact_id TEXT   NOT NULL,
    phone      TEXT   NOT NULL,
    event      TEXT   NOT NULL
        CHECK (event IN ('opt_out', 'opt_in', 'join', 'leave', 'erase', 'confirm_request',
        'confirm', 'confirm_expire')),
    group_id   TEXT,
    source     TEXT   NOT NULL CHECK (source IN ('keyword', 'api', 'import', 'page', 'carrier',
        'system')),
    message_id TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (plan_id, id)
);
INSERT INTO consent_events_v2 SELECT plan_id, id, contact_id, phone, event, group_id, source,
    message_id, created_at FROM consent_events;
DROP TABLE consent_events;
ALTER TABLE consent_events_v2 RENAME TO consent_events;
CREATE INDEX consent_events_by_contact ON consent_events (plan_id, contact_id, created_at, id);
