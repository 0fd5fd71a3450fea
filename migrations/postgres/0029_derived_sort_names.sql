-- Storage v2: the lower-cased sort names are kept only where lower() in the "C" collation,
-- which changes ASCII letters alone (as SQLite's does), cannot rebuild them from the names (a
-- capital outside ASCII, as in "Élodie"); elsewhere they are NULL and the indexes hold the
-- rebuilt text. The expressions are the store's `SORT_NAME` and `SORT_NAME_LAST`, written
-- identically so that the planner reads these indexes for them. Changing the columns with
-- USING rewrites the table once, so the rows shrink now rather than at a later VACUUM FULL.
DROP INDEX contacts_by_sort_name;
DROP INDEX contacts_by_sort_name_last;
ALTER TABLE contacts
    ALTER COLUMN sort_name DROP NOT NULL,
    ALTER COLUMN sort_name DROP DEFAULT,
    ALTER COLUMN sort_name TYPE TEXT COLLATE "C" USING CASE
        WHEN sort_name = lower(coalesce(first_name || ' ' || last_name, first_name, last_name, '') COLLATE "C")
        THEN NULL ELSE sort_name END,
    ALTER COLUMN sort_name_last DROP NOT NULL,
    ALTER COLUMN sort_name_last DROP DEFAULT,
    ALTER COLUMN sort_name_last TYPE TEXT COLLATE "C" USING CASE
        WHEN sort_name_last = lower(coalesce(last_name || ' ' || first_name, last_name, first_name, '') COLLATE "C")
        THEN NULL ELSE sort_name_last END;
CREATE INDEX contacts_by_sort_name ON contacts (plan,
    coalesce(sort_name, lower(coalesce(first_name || ' ' || last_name, first_name, last_name, '') COLLATE "C")),
    key);
CREATE INDEX contacts_by_sort_name_last ON contacts (plan,
    coalesce(sort_name_last, lower(coalesce(last_name || ' ' || first_name, last_name, first_name, '') COLLATE "C")),
    key);
