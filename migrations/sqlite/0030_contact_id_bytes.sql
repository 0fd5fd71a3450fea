-- Storage v2: a contact's public id, a ULID, is stored as its 16 bytes instead of its 26
-- characters: ~10 bytes less in the row and as many in the index on it. The bytes are
-- big-endian, so they order as the text does: id order, cursors and pages are unchanged.
-- `ContactId::to_bytes` makes them in the code; here the text is decoded digit by digit
-- (Crockford's base32, 5 bits a digit, 130 bits whose first 2 are zero): digits 1-2 are the
-- first byte, 3-14 and 15-26 the next 60 bits each, and each part is written in hex.
-- As in migration 26, the column is replaced, and nothing but its index refers to it. An id
-- that is not 26 digits of that alphabet decodes to NULL, which the new column refuses: the
-- migration stops rather than store a wrong id.
CREATE TEMP TABLE digit_positions (i INTEGER PRIMARY KEY);
WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 26)
INSERT INTO digit_positions SELECT i FROM n;
DROP INDEX contacts_by_id;
ALTER TABLE contacts ADD COLUMN id_bytes BLOB NOT NULL DEFAULT x'';
UPDATE contacts SET id_bytes = (
    SELECT CASE WHEN length(contacts.id) = 26 AND min(d) >= 0 THEN unhex(printf('%02X%015X%015X',
        sum(d << (5 * (2 - i))) FILTER (WHERE i <= 2),
        sum(d << (5 * (14 - i))) FILTER (WHERE i BETWEEN 3 AND 14),
        sum(d << (5 * (26 - i))) FILTER (WHERE i >= 15))) END
    FROM (SELECT i, instr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', substr(upper(contacts.id), i, 1)) - 1 AS d
          FROM digit_positions));
DROP TABLE digit_positions;
ALTER TABLE contacts DROP COLUMN id;
ALTER TABLE contacts RENAME COLUMN id_bytes TO id;
CREATE UNIQUE INDEX contacts_by_id ON contacts (plan, id);
