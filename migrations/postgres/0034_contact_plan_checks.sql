-- Storage v2 (PostgreSQL only): a contact's plan is checked a statement at a time, as a
-- membership's contact and group are (migrations 15 and 32). The foreign key checked and locked
-- the plan once per inserted contact, a query each: importing 1,000,000 contacts spent 3–4 s of
-- the insert's ~20 s on it. The rules stay the foreign key's: a contact names a plan that exists,
-- locked (FOR KEY SHARE) until the inserting transaction ends, so that deleting the plan waits
-- and then removes the contact; deleting a plan removes its contacts. A contact never moves to
-- another plan (its groups, memberships and consent are the plan's): a statement that changes
-- the plan is refused, where the foreign key let it through to any existing plan; and a plan's
-- key, which the foreign key kept from changing under its contacts, is refused a change too.

ALTER TABLE contacts DROP CONSTRAINT contacts_plan_fkey;

CREATE FUNCTION contacts_check_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Plans deleted by a transaction that committed since the statement began are not locked
    -- (read committed skips them), so they count as missing.
    IF (SELECT count(*) FROM (
            SELECT 1 FROM plans p
            WHERE p.key = ANY (ARRAY(SELECT DISTINCT plan FROM added))
            FOR KEY SHARE OF p) locked)
       <> (SELECT count(DISTINCT plan) FROM added) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a contact names a plan that does not exist',
                  TABLE = 'contacts';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_added AFTER INSERT ON contacts
REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION contacts_check_added();

-- These two fire only for statements that name the column, which Roster's never do.
CREATE FUNCTION refuse_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE foreign_key_violation
        USING MESSAGE = TG_ARGV[0], TABLE = TG_TABLE_NAME;
END
$$;

CREATE TRIGGER contacts_plan_kept BEFORE UPDATE OF plan ON contacts
FOR EACH ROW WHEN (OLD.plan IS DISTINCT FROM NEW.plan)
EXECUTE FUNCTION refuse_key_change('a contact cannot move to another plan');

CREATE TRIGGER plans_key_kept BEFORE UPDATE OF key ON plans
FOR EACH ROW WHEN (OLD.key IS DISTINCT FROM NEW.key)
EXECUTE FUNCTION refuse_key_change('a plan''s key cannot change');

CREATE FUNCTION plans_drop_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contacts WHERE plan = ANY (ARRAY(SELECT key FROM gone));
    RETURN NULL;
END
$$;

CREATE TRIGGER plans_gone AFTER DELETE ON plans
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION plans_drop_contacts();
