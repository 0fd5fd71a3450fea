-- Storage v2, step 5: the number-type index holds only the numbers that cannot take an SMS.
-- Nearly every contact is `mobile` or `fixed_line_or_mobile` (every valid North American
-- number), so an index of every valid number's type cost 30-40 bytes a contact, and 0.7 s of a
-- 1M-row SQLite import, while serving only searches for the rare types: a search for a common
-- type reads the order's own index anyway. The two types are the `channel=sms` filter's.
DROP INDEX contacts_by_number_type;
CREATE INDEX contacts_by_number_type ON contacts (plan, number_type)
    WHERE number_type NOT IN ('mobile', 'fixed_line_or_mobile');
