-- Roster's writers now read each number they copy into a membership under the contact's
-- key-share lock (the lock the foreign key takes anyway), so a change of number waits for them
-- and a number changed just before is read again. The insert trigger of 0007 then only has to
-- fill in the number for writers that give none: instances of a version before 0007 during a
-- rolling upgrade. Skipping it for the others saves a PL/pgSQL call per membership written.
-- The argument rests on UNIQUE (plan_id, phone) of 0001 being a plain constraint: a change of a
-- column in such an index takes the row lock that conflicts with a key-share lock (a partial,
-- expression or deferrable one would not count). Replacing the trigger in place takes a lock
-- that lets reads of the table go on (dropping it would stop them).
CREATE OR REPLACE TRIGGER group_members_phone_from_contact BEFORE INSERT ON group_members
FOR EACH ROW WHEN (NEW.phone IS NULL)
EXECUTE FUNCTION group_members_phone_from_contact();
