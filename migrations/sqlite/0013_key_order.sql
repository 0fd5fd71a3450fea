-- Storage v2, step 4: a contact's integer key breaks the ties of its orders, and is its
-- creation order. The name, last-name and modified orders carried the 26-character id after
-- their sort key (about 30 bytes a contact in each); SQLite puts the row's key at the end of every
-- index entry anyway, so each order now ends with the key for nothing. Keys rise as contacts are
-- created (migration 11 numbered existing contacts in id order, whose ULIDs begin with their
-- creation time), so the index of creation times is replaced by one of the plan alone, which is
-- in key order within a plan; the opted-out index follows it.

DROP INDEX contacts_by_created;
DROP INDEX contacts_by_sort_name;
DROP INDEX contacts_by_sort_name_last;
DROP INDEX contacts_by_modified;
DROP INDEX contacts_opted_out;

CREATE INDEX contacts_by_plan ON contacts (plan);
CREATE INDEX contacts_by_sort_name ON contacts (plan, sort_name);
CREATE INDEX contacts_by_sort_name_last ON contacts (plan, sort_name_last);
CREATE INDEX contacts_by_modified ON contacts (plan, modified_at);
CREATE INDEX contacts_opted_out ON contacts (plan) WHERE opted_out;
