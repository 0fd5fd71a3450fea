-- Tokens get a name and scopes (a comma-separated list of read, write, send, admin). A token
-- without scopes (every token made before this migration) keeps full rights.
ALTER TABLE api_tokens ADD COLUMN name TEXT;
ALTER TABLE api_tokens ADD COLUMN scopes TEXT;
