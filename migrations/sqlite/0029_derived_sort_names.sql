-- Storage v2: the lower-cased sort names are kept only where SQLite's lower(), which changes
-- ASCII letters alone, cannot rebuild them from the names (a capital outside ASCII, as in
-- "Élodie"); elsewhere they are NULL and the indexes hold the rebuilt text. That is ~26 bytes
-- a contact. The expressions are the store's `SORT_NAME` and `SORT_NAME_LAST`, written
-- identically so that the planner reads these indexes for them. As in migration 26, the
-- columns are replaced (they were NOT NULL) and nothing but their indexes refers to them.
DROP INDEX contacts_by_sort_name;
DROP INDEX contacts_by_sort_name_last;
ALTER TABLE contacts ADD COLUMN stored_sort_name TEXT;
ALTER TABLE contacts ADD COLUMN stored_sort_name_last TEXT;
UPDATE contacts SET
    stored_sort_name = CASE
        WHEN sort_name IS lower(coalesce(first_name || ' ' || last_name, first_name, last_name, ''))
        THEN NULL ELSE sort_name END,
    stored_sort_name_last = CASE
        WHEN sort_name_last IS lower(coalesce(last_name || ' ' || first_name, last_name, first_name, ''))
        THEN NULL ELSE sort_name_last END
WHERE sort_name IS NOT lower(coalesce(first_name || ' ' || last_name, first_name, last_name, ''))
   OR sort_name_last IS NOT lower(coalesce(last_name || ' ' || first_name, last_name, first_name, ''));
ALTER TABLE contacts DROP COLUMN sort_name;
ALTER TABLE contacts DROP COLUMN sort_name_last;
ALTER TABLE contacts RENAME COLUMN stored_sort_name TO sort_name;
ALTER TABLE contacts RENAME COLUMN stored_sort_name_last TO sort_name_last;
CREATE INDEX contacts_by_sort_name ON contacts (plan,
    coalesce(sort_name, lower(coalesce(first_name || ' ' || last_name, first_name, last_name, ''))));
CREATE INDEX contacts_by_sort_name_last ON contacts (plan,
    coalesce(sort_name_last, lower(coalesce(last_name || ' ' || first_name, last_name, first_name, ''))));
