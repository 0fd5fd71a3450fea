-- Numbers erased at their owner's request, kept only as a keyed hash (`domain::erasure`): an
-- API add, an import row or a group keyword of such a number is refused or skipped, until its
-- owner opts in by keyword.
CREATE TABLE erased_numbers (
    plan_id   TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    hash      TEXT   NOT NULL,
    erased_at BIGINT NOT NULL,
    PRIMARY KEY (plan_id, hash)
);
