-- Storage v2: a contact's public id, a ULID, is stored as its 16 bytes instead of its 26
-- characters. The bytes are big-endian, so they order as the text does: id order, cursors
-- and pages are unchanged. `ContactId::to_bytes` makes them in the code; here the text is
-- decoded digit by digit (Crockford's base32, 5 bits a digit, 130 bits whose first 2 are
-- zero): digits 1-2 are the first byte, 3-14 and 15-26 the next 60 bits each, and each part is
-- written in hex. Changing the column's type rewrites the table and its indexes once; an id
-- that is not a ULID stops the migration rather than be stored wrong.
CREATE FUNCTION pg_temp.ulid_bytes(id text) RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    digits CONSTANT text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    head bigint := 0;
    middle bigint := 0;
    tail bigint := 0;
    digit bigint;
BEGIN
    IF length(id) <> 26 THEN
        RAISE EXCEPTION 'contact id % is not a ULID', id;
    END IF;
    FOR i IN 1..26 LOOP
        digit := strpos(digits, substr(upper(id), i, 1)) - 1;
        IF digit < 0 OR (i = 1 AND digit > 7) THEN
            RAISE EXCEPTION 'contact id % is not a ULID', id;
        END IF;
        IF i <= 2 THEN
            head := head * 32 + digit;
        ELSIF i <= 14 THEN
            middle := middle * 32 + digit;
        ELSE
            tail := tail * 32 + digit;
        END IF;
    END LOOP;
    RETURN decode(lpad(to_hex(head), 2, '0') || lpad(to_hex(middle), 15, '0')
                  || lpad(to_hex(tail), 15, '0'), 'hex');
END
$$;
ALTER TABLE contacts ALTER COLUMN id TYPE bytea USING pg_temp.ulid_bytes(id);
DROP FUNCTION pg_temp.ulid_bytes(text);
