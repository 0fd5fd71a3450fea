-- Each membership carries its contact's number, so that the numbers of a group are one range
-- of an index in number order: streaming a group reads that range alone, and resolving several
-- groups merges their ranges, instead of looking every member up in `contacts`.
-- A trigger keeps the copy equal to the contact's number.
CREATE TABLE group_members_with_phone (
    plan_id    TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    phone      TEXT NOT NULL,
    PRIMARY KEY (plan_id, group_id, contact_id),
    FOREIGN KEY (plan_id, group_id) REFERENCES contact_groups (plan_id, id) ON DELETE CASCADE,
    FOREIGN KEY (plan_id, contact_id) REFERENCES contacts (plan_id, id) ON DELETE CASCADE
) WITHOUT ROWID;

INSERT INTO group_members_with_phone (plan_id, group_id, contact_id, phone)
SELECT m.plan_id, m.group_id, m.contact_id, c.phone
FROM group_members m JOIN contacts c ON c.plan_id = m.plan_id AND c.id = m.contact_id;

DROP TABLE group_members;
ALTER TABLE group_members_with_phone RENAME TO group_members;
CREATE INDEX group_members_by_contact ON group_members (plan_id, contact_id);
CREATE INDEX group_members_by_phone ON group_members (plan_id, group_id, phone);

CREATE TRIGGER contacts_phone_to_members AFTER UPDATE OF phone ON contacts
WHEN NEW.phone <> OLD.phone
BEGIN
    UPDATE group_members SET phone = NEW.phone
    WHERE plan_id = NEW.plan_id AND contact_id = NEW.id;
END;

-- The opted-out numbers of a plan in order, to be taken out of a merge of groups' ranges.
CREATE INDEX contacts_opted_out_phones ON contacts (plan_id, phone) WHERE opted_out;
