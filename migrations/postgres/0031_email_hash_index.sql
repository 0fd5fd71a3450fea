-- Storage v2 (PostgreSQL only): the email search is an exact, case-insensitive match and
-- nothing else (no prefix, no order), so its index keeps a 4-byte hash of the lower-cased
-- address instead of the plan and the address itself: 34 B per contact instead of 56 at
-- 1,000,000 contacts. Rows of every plan with the same address share a bucket; the search
-- keeps its own plan's. Contacts without an email have no entry. SQLite has no hash index and
-- keeps its partial B-tree.
DROP INDEX contacts_by_email;
CREATE INDEX contacts_by_email ON contacts USING hash (lower(email)) WHERE email IS NOT NULL;
