-- Signed-in browsers of the web page. The cookie holds a random id; only its SHA-256 is kept.
-- A session lives no longer than the token it signed in with (looked up with the token, so
-- revoking the token ends it) and its own expiry.
CREATE TABLE web_sessions (
    plan_id    TEXT   NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    id_hash    TEXT   NOT NULL,
    token_hash TEXT   NOT NULL,
    -- The value every form of this session must carry back (synchroniser token).
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (plan_id, id_hash)
);
CREATE UNIQUE INDEX web_sessions_by_hash ON web_sessions (id_hash);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
