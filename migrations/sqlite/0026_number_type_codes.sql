-- Storage v2: a contact's number type is stored as a small integer code instead of its name
-- (`fixed_line_or_mobile`, 20 bytes, for every North American number). The codes are
-- `NumberType::code` in src/domain/msisdn.rs, and a unit test there checks this mapping
-- against them. The two types that take an SMS are 0 and 1, which SQLite keeps in the row's
-- header with no bytes of their own; the partial index keeps the rare types, as before.
-- The column is replaced rather than converted in place: its TEXT affinity would keep the
-- codes as text. Nothing but the index refers to it, so other tables are not rebuilt.
DROP INDEX contacts_by_number_type;
ALTER TABLE contacts ADD COLUMN number_code INTEGER;
UPDATE contacts SET number_code = CASE number_type
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
END
WHERE number_type IS NOT NULL;
ALTER TABLE contacts DROP COLUMN number_type;
ALTER TABLE contacts RENAME COLUMN number_code TO number_type;
CREATE INDEX contacts_by_number_type ON contacts (plan, number_type)
    WHERE number_type NOT IN (0, 1);
