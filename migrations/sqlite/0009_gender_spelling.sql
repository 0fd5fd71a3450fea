-- Genders are stored in one spelling, lower case with `f` and `m` spelled out, so that a search
-- finds them however they were typed (`Female`, `F`); this brings genders stored before to it.
-- SQLite's lower() changes ASCII letters only.
UPDATE contacts
SET gender = CASE lower(gender) WHEN 'f' THEN 'female' WHEN 'm' THEN 'male' ELSE lower(gender) END
WHERE gender IS NOT NULL
  AND gender <> CASE lower(gender) WHEN 'f' THEN 'female' WHEN 'm' THEN 'male' ELSE lower(gender) END;
