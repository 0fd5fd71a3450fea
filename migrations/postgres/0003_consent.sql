-- A plan's consent keywords, as JSON arrays of upper-case words; NULL means the FCC defaults.
ALTER TABLE plans ADD COLUMN opt_out_keywords TEXT;
ALTER TABLE plans ADD COLUMN opt_in_keywords TEXT;

-- Inbound messages, by the id the SMS platform gave them: a message delivered twice is acted on
-- once, and answered with what it did the first time.
CREATE TABLE inbound_messages (
    plan_id     TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id          TEXT   NOT NULL,
    sender      TEXT   NOT NULL,
    recipient   TEXT   NOT NULL,
    body        TEXT   NOT NULL,
    received_at TEXT,
    outcome     TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (plan_id, id)
);

-- Every consent change: who, what, how, when, from which message. Kept when the contact is
-- deleted (the phone number stays with it), since consent records must outlive the contact.
CREATE TABLE consent_events (
    plan_id    TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id         TEXT   NOT NULL,
    contact_id TEXT   NOT NULL,
    phone      TEXT   NOT NULL,
    event      TEXT   NOT NULL CHECK (event IN ('opt_out', 'opt_in', 'join', 'leave')),
    group_id   TEXT,
    source     TEXT   NOT NULL CHECK (source IN ('keyword', 'api', 'import', 'page')),
    message_id TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (plan_id, id)
);
CREATE INDEX consent_events_by_contact ON consent_events (plan_id, contact_id, created_at, id);
