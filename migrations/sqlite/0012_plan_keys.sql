-- Storage v2, step 3: plans get an integer key, and contacts carry it instead of the plan's
-- 32-character id, which stood at the front of the row and of every one of its indexes (about
-- 350 bytes a contact). The index set is cut to what the searches use: gender, number type and
-- email index only the contacts that have one, and the opted-out index holds only the opted-out,
-- in the order of a page of them.
-- Plans keep their id (on the wire and in every other table); `key` is unique beside it. A new
-- plan takes the next key.
-- Foreign keys are enforced during this migration, so `contacts` is dropped only once
-- `group_members` no longer refers to it (dropping it first would delete every membership).

ALTER TABLE plans ADD COLUMN key INTEGER;
UPDATE plans SET key = rowid;
CREATE UNIQUE INDEX plans_by_key ON plans (key);

CREATE TABLE contacts_v3 (
    key              INTEGER PRIMARY KEY,
    plan             INTEGER NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
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
    sort_name        TEXT    NOT NULL DEFAULT '',
    sort_name_last   TEXT    NOT NULL DEFAULT ''
);
INSERT INTO contacts_v3 (key, plan, id, phone, first_name, last_name, email, gender, fields,
                         number_type, country, opted_out, opted_out_at, opted_out_reason,
                         created_at, modified_at, sort_name, sort_name_last)
SELECT c.key, p.key, c.id, c.phone, c.first_name, c.last_name, c.email, c.gender, c.fields,
       c.number_type, c.country, c.opted_out, c.opted_out_at, c.opted_out_reason, c.created_at,
       c.modified_at, c.sort_name, c.sort_name_last
FROM contacts c JOIN plans p ON p.id = c.plan_id ORDER BY c.key;

CREATE TABLE group_members_v3 (
    grp     INTEGER NOT NULL REFERENCES contact_groups (key) ON DELETE CASCADE,
    contact INTEGER NOT NULL REFERENCES contacts_v3 (key) ON DELETE CASCADE,
    PRIMARY KEY (grp, contact)
) WITHOUT ROWID;
INSERT INTO group_members_v3 (grp, contact) SELECT grp, contact FROM group_members ORDER BY 1, 2;

DROP TABLE group_members;
DROP TABLE contacts;
-- Renaming a table rewrites the foreign keys that name it.
ALTER TABLE contacts_v3 RENAME TO contacts;
ALTER TABLE group_members_v3 RENAME TO group_members;

CREATE INDEX group_members_by_contact ON group_members (contact, grp);

CREATE UNIQUE INDEX contacts_by_id ON contacts (plan, id);
CREATE UNIQUE INDEX contacts_by_phone ON contacts (plan, phone);
CREATE INDEX contacts_by_sort_name ON contacts (plan, sort_name, id);
CREATE INDEX contacts_by_sort_name_last ON contacts (plan, sort_name_last, id);
CREATE INDEX contacts_by_created ON contacts (plan, created_at, id);
CREATE INDEX contacts_by_modified ON contacts (plan, modified_at, id);
CREATE INDEX contacts_by_email ON contacts (plan, lower(email)) WHERE email IS NOT NULL;
CREATE INDEX contacts_by_gender ON contacts (plan, gender) WHERE gender IS NOT NULL;
CREATE INDEX contacts_by_number_type ON contacts (plan, number_type)
    WHERE number_type IS NOT NULL;
CREATE INDEX contacts_opted_out ON contacts (plan, created_at, id) WHERE opted_out;
