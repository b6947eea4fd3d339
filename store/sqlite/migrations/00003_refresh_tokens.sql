-- +goose Up
-- A refresh family is every refresh token descended from one password
-- login; revoking it (on reuse, on revocation) ends them all.
CREATE TABLE refresh_families (
    id            TEXT    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id     TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,   -- space-delimited, as granted at login
    token_version INTEGER NOT NULL,   -- the user's token version at login
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,   -- no token of the family outlives it
    revoked_at    INTEGER
) STRICT;
CREATE INDEX refresh_families_user ON refresh_families (user_id);

-- Refresh tokens are stored only as SHA-256 hashes.
CREATE TABLE refresh_tokens (
    hash       BLOB    NOT NULL PRIMARY KEY,
    family_id  TEXT    NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER             -- set when it is rotated
) STRICT, WITHOUT ROWID;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- +goose Down
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
