-- +goose Up
-- Registered OAuth2 clients. A confidential client has a secret (kept only
-- as a hash); a public one has none.
CREATE TABLE clients (
    id          TEXT    NOT NULL PRIMARY KEY,
    secret_hash TEXT    NOT NULL DEFAULT '',
    grant_types TEXT    NOT NULL,   -- space-delimited
    scopes      TEXT    NOT NULL,   -- space-delimited
    created_at  INTEGER NOT NULL
) STRICT;

-- A retired key signs nothing more; it verifies until the tokens it signed
-- have expired.
ALTER TABLE signing_keys ADD COLUMN retired_at INTEGER;

-- +goose Down
ALTER TABLE signing_keys DROP COLUMN retired_at;
DROP TABLE clients;
