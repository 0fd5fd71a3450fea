-- Storage v2: a contact's number type is stored as a small integer code instead of its name
-- (`fixed_line_or_mobile`, 21 bytes with its length, for every North American number). The
-- codes are `NumberType::code` in src/domain/msisdn.rs, and a unit test there checks this
-- mapping against them. The partial index keeps the rare types, as before; its condition
-- names the column, so it is dropped before the column's type changes (which rewrites the
-- table and rebuilds its other indexes).
DROP INDEX contacts_by_number_type;
ALTER TABLE contacts ALTER COLUMN number_type TYPE smallint USING (CASE number_type
    WHEN 'mobile' THEN 0
    WHEN 'fixed_line_or_mobile' THEN 1
    WHEN 'fixed_line' THEN 2
    WHEN 'toll_free' THEN 3
    WHEN 'premium_rate' THEN 4
    WHEN 'shared_cost' THEN 5
    WHEN 'voip' THEN 6
    WHEN 'personal_number' THEN 7
    WHEN 'pager' THEN 8
    WHEN 'uan' THEN 9
    WHEN 'voicemail' THEN 10
    WHEN 'unknown' THEN 11
END);
CREATE INDEX contacts_by_number_type ON contacts (plan, number_type)
    WHERE number_type NOT IN (0, 1);
