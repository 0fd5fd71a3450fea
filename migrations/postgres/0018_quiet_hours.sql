-- Quiet hours: a plan's window in each recipient's local time (seconds after midnight; both NULL
-- when off), and the zone of numbers whose own zone is unknown (NULL: never held).
ALTER TABLE plans ADD COLUMN quiet_start BIGINT;
ALTER TABLE plans ADD COLUMN quiet_end BIGINT;
ALTER TABLE plans ADD COLUMN quiet_fallback_zone TEXT;

-- A contact's own IANA time zone, ahead of the one its number suggests. Few contacts have one:
-- the partial index tells a resolution at once whether it must read them.
ALTER TABLE contacts ADD COLUMN time_zone TEXT;
CREATE INDEX contacts_with_time_zone ON contacts (plan) WHERE time_zone IS NOT NULL;

-- Each chunk of a batch holds recipients of one set of time zones ('&'-separated, as
-- libphonenumber lists them; NULL when quiet hours did not apply) and, while it waits for
-- quiet hours to end in them, when it may be handed over.
ALTER TABLE batch_recipients ADD COLUMN time_zones TEXT;
ALTER TABLE batch_recipients ADD COLUMN held_until BIGINT;

-- How many of a batch's recipients are held, and the earliest moment one is released. Chunks
-- of one zone set fill separately, so a batch may have more chunks than its recipients need:
-- the resolution records how many (NULL for batches resolved before, whose chunks were full).
ALTER TABLE batches ADD COLUMN held_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN held_until BIGINT;
ALTER TABLE batches ADD COLUMN chunk_count BIGINT;
