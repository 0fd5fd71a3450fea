-- Every table is keyed by plan first, so that the schema can be distributed by plan.
-- Timestamps are milliseconds since the Unix epoch (UTC).

CREATE TABLE plans (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL,
    default_region TEXT,
    created_at     BIGINT  NOT NULL
);

-- Only the SHA-256 of a token is kept; the token itself is shown once, at creation.
CREATE TABLE api_tokens (
    plan_id    TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    token_hash TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (plan_id, token_hash)
);
CREATE UNIQUE INDEX api_tokens_by_hash ON api_tokens (token_hash);

CREATE TABLE contacts (
    plan_id          TEXT    NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id               TEXT    NOT NULL,
    phone            TEXT    NOT NULL,
    first_name       TEXT,
    last_name        TEXT,
    email            TEXT,
    gender           TEXT,
    fields           TEXT    NOT NULL DEFAULT '{}',
    number_type      TEXT,
    country          TEXT,
    opted_out        BOOLEAN NOT NULL DEFAULT FALSE,
    opted_out_at     BIGINT,
    opted_out_reason TEXT,
    created_at       BIGINT  NOT NULL,
    modified_at      BIGINT  NOT NULL,
    PRIMARY KEY (plan_id, id),
    UNIQUE (plan_id, phone)
);

CREATE TABLE contact_groups (
    plan_id      TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id           TEXT   NOT NULL,
    name         TEXT,
    description  TEXT,
    status       TEXT   NOT NULL CHECK (status IN ('ACTIVE', 'DELETED')),
    auto_update  TEXT,
    -- Direct members, maintained on every change.
    member_count BIGINT NOT NULL DEFAULT 0,
    -- Distinct effective members (own and active child groups'), refreshed on every change
    -- to the group or to any group below it.
    size         BIGINT NOT NULL DEFAULT 0,
    version      BIGINT NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    PRIMARY KEY (plan_id, id)
);
CREATE INDEX contact_groups_by_created ON contact_groups (plan_id, status, created_at, id);
CREATE INDEX contact_groups_by_name ON contact_groups (plan_id, status, name, id);

CREATE TABLE group_members (
    plan_id    TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    PRIMARY KEY (plan_id, group_id, contact_id),
    FOREIGN KEY (plan_id, group_id) REFERENCES contact_groups (plan_id, id) ON DELETE CASCADE,
    FOREIGN KEY (plan_id, contact_id) REFERENCES contacts (plan_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_by_contact ON group_members (plan_id, contact_id);

CREATE TABLE group_children (
    plan_id  TEXT NOT NULL,
    group_id TEXT NOT NULL,
    child_id TEXT NOT NULL,
    PRIMARY KEY (plan_id, group_id, child_id),
    FOREIGN KEY (plan_id, group_id) REFERENCES contact_groups (plan_id, id) ON DELETE CASCADE,
    FOREIGN KEY (plan_id, child_id) REFERENCES contact_groups (plan_id, id) ON DELETE CASCADE
);
CREATE INDEX group_children_by_child ON group_children (plan_id, child_id);
