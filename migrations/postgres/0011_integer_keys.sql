-- Storage v2, step 2: contacts and groups get an integer key, and memberships and child groups
-- become pairs of those keys. A membership was the plan id, two ULIDs and a copy of the number in
-- three B-trees; it is now two integers in two, and nothing copies a contact's number any more
-- (the triggers of 0007 go). Public ids do not change: `id` stays, unique in its plan.
-- Keys are given in (plan, id) order, the order members were listed in before, and new contacts
-- take the next key, so that a group's members in key order are in creation order.
-- Instances of an earlier version cannot run beside this schema: stop them before upgrading.

CREATE TABLE contacts_v2 (
    key              BIGINT  GENERATED ALWAYS AS IDENTITY,
    plan_id          TEXT    NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id               TEXT    NOT NULL,
    phone            TEXT    COLLATE "C" NOT NULL,
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
    sort_name        TEXT    COLLATE "C" NOT NULL DEFAULT '',
    sort_name_last   TEXT    COLLATE "C" NOT NULL DEFAULT ''
);
-- Identity values are drawn in the order the sorted rows arrive.
INSERT INTO contacts_v2 (plan_id, id, phone, first_name, last_name, email, gender, fields,
                         number_type, country, opted_out, opted_out_at, opted_out_reason,
                         created_at, modified_at, sort_name, sort_name_last)
SELECT plan_id, id, phone, first_name, last_name, email, gender, fields, number_type, country,
       opted_out, opted_out_at, opted_out_reason, created_at, modified_at, sort_name,
       sort_name_last
FROM contacts ORDER BY plan_id, id COLLATE "C";
ALTER TABLE contacts_v2 ADD CONSTRAINT contacts_key PRIMARY KEY (key);
CREATE UNIQUE INDEX contacts_by_id_v2 ON contacts_v2 (plan_id, id);

CREATE TABLE contact_groups_v2 (
    key          BIGINT GENERATED ALWAYS AS IDENTITY,
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
    -- A smart group has a rule (the filter language's source) instead of direct members.
    rule         TEXT
);
INSERT INTO contact_groups_v2 (plan_id, id, name, description, status, auto_update, member_count,
                               size, version, created_at, modified_at, rule)
SELECT plan_id, id, name, description, status, auto_update, member_count, size, version,
       created_at, modified_at, rule
FROM contact_groups ORDER BY plan_id, id COLLATE "C";
ALTER TABLE contact_groups_v2 ADD CONSTRAINT contact_groups_key PRIMARY KEY (key);
CREATE UNIQUE INDEX contact_groups_by_id_v2 ON contact_groups_v2 (plan_id, id);

-- A group's members are one range of the primary key, in contact key order; a contact's groups
-- are one range of the second index.
CREATE TABLE group_members_v2 (
    grp     BIGINT NOT NULL,
    contact BIGINT NOT NULL
);
INSERT INTO group_members_v2 (grp, contact)
SELECT g.key, c.key
FROM group_members m
JOIN contact_groups_v2 g ON g.plan_id = m.plan_id AND g.id = m.group_id
JOIN contacts_v2 c ON c.plan_id = m.plan_id AND c.id = m.contact_id
ORDER BY 1, 2;

CREATE TABLE group_children_v2 (
    parent BIGINT NOT NULL,
    child  BIGINT NOT NULL
);
INSERT INTO group_children_v2 (parent, child)
SELECT p.key, c.key
FROM group_children gc
JOIN contact_groups_v2 p ON p.plan_id = gc.plan_id AND p.id = gc.group_id
JOIN contact_groups_v2 c ON c.plan_id = gc.plan_id AND c.id = gc.child_id
ORDER BY 1, 2;

DROP TABLE group_members;
DROP TABLE group_children;
DROP TABLE contacts;
DROP TABLE contact_groups;
DROP FUNCTION contacts_phone_to_members();
DROP FUNCTION group_members_phone_from_contact();

ALTER TABLE contacts_v2 RENAME TO contacts;
ALTER TABLE contact_groups_v2 RENAME TO contact_groups;
ALTER TABLE group_members_v2 RENAME TO group_members;
ALTER TABLE group_children_v2 RENAME TO group_children;
ALTER INDEX contacts_by_id_v2 RENAME TO contacts_by_id;
ALTER INDEX contact_groups_by_id_v2 RENAME TO contact_groups_by_id;
ALTER TABLE contacts RENAME CONSTRAINT contacts_v2_plan_id_fkey TO contacts_plan_id_fkey;
ALTER TABLE contact_groups RENAME CONSTRAINT contact_groups_v2_plan_id_fkey
    TO contact_groups_plan_id_fkey;
ALTER TABLE contact_groups RENAME CONSTRAINT contact_groups_v2_status_check
    TO contact_groups_status_check;

ALTER TABLE group_members ADD CONSTRAINT group_members_key PRIMARY KEY (grp, contact);
ALTER TABLE group_members ADD CONSTRAINT group_members_grp_fkey
    FOREIGN KEY (grp) REFERENCES contact_groups (key) ON DELETE CASCADE;
ALTER TABLE group_members ADD CONSTRAINT group_members_contact_fkey
    FOREIGN KEY (contact) REFERENCES contacts (key) ON DELETE CASCADE;
CREATE INDEX group_members_by_contact ON group_members (contact, grp);

ALTER TABLE group_children ADD CONSTRAINT group_children_key PRIMARY KEY (parent, child);
ALTER TABLE group_children ADD CONSTRAINT group_children_parent_fkey
    FOREIGN KEY (parent) REFERENCES contact_groups (key) ON DELETE CASCADE;
ALTER TABLE group_children ADD CONSTRAINT group_children_child_fkey
    FOREIGN KEY (child) REFERENCES contact_groups (key) ON DELETE CASCADE;
CREATE INDEX group_children_by_child ON group_children (child, parent);

ALTER TABLE contacts ADD CONSTRAINT contacts_by_phone UNIQUE (plan_id, phone);
CREATE INDEX contacts_by_sort_name ON contacts (plan_id, sort_name, id);
CREATE INDEX contacts_by_sort_name_last ON contacts (plan_id, sort_name_last, id);
CREATE INDEX contacts_by_created ON contacts (plan_id, created_at, id);
CREATE INDEX contacts_by_modified ON contacts (plan_id, modified_at, id);
CREATE INDEX contacts_by_email ON contacts (plan_id, lower(email));
CREATE INDEX contacts_by_gender ON contacts (plan_id, gender);
CREATE INDEX contacts_by_number_type ON contacts (plan_id, number_type);
CREATE INDEX contacts_by_opted_out ON contacts (plan_id, opted_out);

CREATE INDEX contact_groups_by_created ON contact_groups (plan_id, status, created_at, id);
CREATE INDEX contact_groups_by_name ON contact_groups (plan_id, status, name, id);
