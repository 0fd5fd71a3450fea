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

-- The opted-out numbers of a plan in order, to be taken out of the groups' numbers.
CREATE INDEX contacts_opted_out_phones ON contacts (plan_id, phone COLLATE "C") WHERE opted_out;
