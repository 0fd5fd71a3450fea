-- Storage v2, step 4: a contact's integer key breaks the ties of its orders, and is its
-- creation order. The name, last-name and modified orders carried the 26-character id after
-- their sort key; they end with the 8-byte key instead. Keys rise as contacts are created
-- (migration 11 numbered existing contacts in id order, whose ULIDs begin with their creation
-- time; new ones take the next value of one sequence, whichever instance writes them), so the
-- index of creation times is replaced by (plan, key); the opted-out index follows it.

DROP INDEX contacts_by_created;
DROP INDEX contacts_by_sort_name;
DROP INDEX contacts_by_sort_name_last;
DROP INDEX contacts_by_modified;
DROP INDEX contacts_opted_out;

CREATE INDEX contacts_by_plan ON contacts (plan, key);
CREATE INDEX contacts_by_sort_name ON contacts (plan, sort_name, key);
CREATE INDEX contacts_by_sort_name_last ON contacts (plan, sort_name_last, key);
CREATE INDEX contacts_by_modified ON contacts (plan, modified_at, key);
CREATE INDEX contacts_opted_out ON contacts (plan, key) WHERE opted_out;
