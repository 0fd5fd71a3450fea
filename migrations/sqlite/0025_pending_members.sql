-- Double opt-in: a join waiting for its number's confirmation. A pending member is not in
-- `group_members`, so it is never a recipient; confirming moves it there, and a request not
-- confirmed by `expires_at` is removed (each step a consent row).
CREATE TABLE pending_members (
    grp          INTEGER NOT NULL REFERENCES contact_groups (key) ON DELETE CASCADE,
    contact      INTEGER NOT NULL REFERENCES contacts (key) ON DELETE CASCADE,
    requested_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (grp, contact)
);
CREATE INDEX pending_members_by_contact ON pending_members (contact);
CREATE INDEX pending_members_by_expiry ON pending_members (expires_at);
