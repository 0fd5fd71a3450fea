-- Delivery reports: the last state the SMS provider reported for each recipient of a batch (a
-- final state is never replaced by an earlier, intermediate one).
CREATE TABLE delivery_reports (
    plan_id     TEXT    NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    batch_id    TEXT    NOT NULL,
    phone       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    code        BIGINT,
    final       BOOLEAN NOT NULL,
    at          BIGINT  NOT NULL,
    received_at BIGINT  NOT NULL,
    PRIMARY KEY (plan_id, batch_id, phone)
);

-- Carriers opt people out too: a delivery report whose code says the recipient opted out is a
-- consent change with the source `carrier`; an erasure leaves one anonymous row, `erase`; a
-- double opt-in writes its request, its confirmation and its expiry (source `system`).
ALTER TABLE consent_events DROP CONSTRAINT consent_events_source_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_source_check
    CHECK (source IN ('keyword', 'api', 'import', 'page', 'carrier',
        'system'));
ALTER TABLE consent_events DROP CONSTRAINT consent_events_event_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_event_check
    CHECK (event IN ('opt_out', 'opt_in', 'join', 'leave', 'erase', 'confirm_request',
        'confirm', 'confirm_expire'));
