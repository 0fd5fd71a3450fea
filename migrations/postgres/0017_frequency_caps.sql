-- A plan's frequency cap: at most `messages` marketing messages per person in any `days` days
-- (both NULL: no cap). A batch's purpose says whether it is marketing (capped) or
-- transactional (never capped).
ALTER TABLE plans ADD COLUMN frequency_cap_messages BIGINT;
ALTER TABLE plans ADD COLUMN frequency_cap_days BIGINT;
ALTER TABLE batches ADD COLUMN purpose TEXT NOT NULL DEFAULT 'marketing';

-- The batches resolved within a cap's period, whose recipients count against it.
CREATE INDEX batches_by_resolution ON batches (plan_id, resolved_at);
