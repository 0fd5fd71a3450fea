-- Each membership carries its contact's number, so that the numbers of a group are one range
-- of an index in number order: streaming a group reads that range alone (an index-only scan),
-- and resolving several groups reads their ranges, instead of looking every member up in
-- `contacts`. Numbers compare byte by byte ("C"), whatever the database's locale, so that
-- ranges read in index order can be merged outside the database. A trigger keeps the copy equal
-- to the contact's number.
ALTER TABLE group_members ADD COLUMN phone TEXT COLLATE "C";
UPDATE group_members m SET phone = c.phone
FROM contacts c WHERE c.plan_id = m.plan_id AND c.id = m.contact_id;
ALTER TABLE group_members ALTER COLUMN phone SET NOT NULL;
CREATE INDEX group_members_by_phone ON group_members (plan_id, group_id, phone);

CREATE FUNCTION contacts_phone_to_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE group_members SET phone = NEW.phone
    WHERE plan_id = NEW.plan_id AND contact_id = NEW.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER contacts_phone_to_members AFTER UPDATE OF phone ON contacts
FOR EACH ROW WHEN (OLD.phone IS DISTINCT FROM NEW.phone)
EXECUTE FUNCTION contacts_phone_to_members();

-- The opted-out numbers of a plan in order (`contacts.phone` compares as "C" since 0002), to be
-- taken out of the groups' numbers.
CREATE INDEX contacts_opted_out_phones ON contacts (plan_id, phone) WHERE opted_out;

-- A membership takes its number from the contact as the row is written, under the same key-share
-- lock its foreign key takes: an insert that read the number before a concurrent change of it
-- committed still stores the new one (the change's trigger above cannot see rows not yet
-- written). It also fills the number for writers that do not give one (an instance of the
-- previous version during a rolling upgrade). Without a contact the row is left to the foreign
-- key to refuse.
CREATE FUNCTION group_members_phone_from_contact() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current TEXT;
BEGIN
    SELECT phone INTO current FROM contacts
    WHERE plan_id = NEW.plan_id AND id = NEW.contact_id FOR KEY SHARE;
    IF FOUND THEN
        NEW.phone := current;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER group_members_phone_from_contact BEFORE INSERT ON group_members
FOR EACH ROW EXECUTE FUNCTION group_members_phone_from_contact();
