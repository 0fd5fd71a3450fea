-- Storage v2 (PostgreSQL only): one index of contacts by (plan, key) instead of two, one by key
-- (the primary key) and one by (plan, key) for a plan's pages in creation order: 31 B per
-- contact fewer. The primary key becomes (plan, key), so every read of contacts by key names
-- their plan too; the store's queries do, and so do these triggers, which read the plan off the
-- groups. SQLite's key is the rowid, which costs nothing, and keeps its schema.
--
-- A foreign key must name a unique index's columns exactly, so the pending members' reference to
-- a contact's key becomes what the memberships' is (migration 15): a check of each inserted
-- statement that locks the contacts named (FOR KEY SHARE) and counts them, and the trigger that
-- removes a deleted contact's memberships removes its pending ones too.

ALTER TABLE pending_members DROP CONSTRAINT pending_members_contact_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_key;
DROP INDEX contacts_by_plan;
ALTER TABLE contacts ADD CONSTRAINT contacts_key PRIMARY KEY (plan, key);

-- How many of the contacts `contact_keys` exist in the plan of the groups `group_keys` (the
-- distinct keys of an inserted statement; a statement writes one plan's rows), locked: fewer
-- than the contacts named means one does not exist, or is another plan's. The plan is one value
-- and the keys an array read with `= ANY`, one descent of the primary key each (an array of
-- plans too took a fifth longer for 100,000 keys).
CREATE FUNCTION contacts_named_by_members(group_keys bigint[], contact_keys bigint[])
RETURNS bigint
LANGUAGE sql AS $$
    SELECT count(*) FROM (
        SELECT 1 FROM contacts c
        WHERE c.plan = (SELECT p.key FROM contact_groups g JOIN plans p ON p.id = g.plan_id
                        WHERE g.key = ANY (group_keys) LIMIT 1)
          AND c.key = ANY (contact_keys)
        FOR KEY SHARE OF c) locked
$$;

CREATE OR REPLACE FUNCTION group_members_check_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Rows deleted by a transaction that committed since the statement began are not locked
    -- (read committed skips them), so they count as missing.
    IF contacts_named_by_members(ARRAY(SELECT DISTINCT grp FROM added),
                                 ARRAY(SELECT DISTINCT contact FROM added))
       <> (SELECT count(DISTINCT contact) FROM added) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a membership names a contact that does not exist',
                  TABLE = 'group_members';
    END IF;
    IF (SELECT count(*) FROM (
            SELECT 1 FROM contact_groups g
            WHERE g.key = ANY (ARRAY(SELECT DISTINCT grp FROM added))
            FOR KEY SHARE OF g) locked)
       <> (SELECT count(DISTINCT grp) FROM added) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a membership names a group that does not exist',
                  TABLE = 'group_members';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION pending_members_check_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF contacts_named_by_members(ARRAY(SELECT DISTINCT grp FROM added),
                                 ARRAY(SELECT DISTINCT contact FROM added))
       <> (SELECT count(DISTINCT contact) FROM added) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a pending member names a contact that does not exist',
                  TABLE = 'pending_members';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER pending_members_added AFTER INSERT ON pending_members
REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION pending_members_check_added();

CREATE OR REPLACE FUNCTION contacts_drop_memberships() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- `= ANY (ARRAY(…))` reads the index by contact; a join with the transition table, which
    -- has no statistics, may be planned as a scan of every membership.
    DELETE FROM group_members WHERE contact = ANY (ARRAY(SELECT key FROM gone));
    DELETE FROM pending_members WHERE contact = ANY (ARRAY(SELECT key FROM gone));
    RETURN NULL;
END
$$;
