-- Contacts are searched and sorted by name in both orders; the lower-cased forms are stored so
-- that they can be indexed. Names and numbers compare byte by byte ("C"), as on SQLite, so that
-- prefix ranges and keyset pages mean the same on both backends whatever the server's locale.
ALTER TABLE contacts ALTER COLUMN phone TYPE TEXT COLLATE "C";
ALTER TABLE contacts ADD COLUMN sort_name TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE contacts ADD COLUMN sort_name_last TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX contacts_by_sort_name ON contacts (plan_id, sort_name, id);
CREATE INDEX contacts_by_sort_name_last ON contacts (plan_id, sort_name_last, id);
CREATE INDEX contacts_by_created ON contacts (plan_id, created_at, id);
CREATE INDEX contacts_by_modified ON contacts (plan_id, modified_at, id);
CREATE INDEX contacts_by_email ON contacts (plan_id, lower(email));
CREATE INDEX contacts_by_gender ON contacts (plan_id, gender);
CREATE INDEX contacts_by_number_type ON contacts (plan_id, number_type);
CREATE INDEX contacts_by_opted_out ON contacts (plan_id, opted_out);

-- A smart group has a rule (the filter language's source) instead of direct members.
ALTER TABLE contact_groups ADD COLUMN rule TEXT;
