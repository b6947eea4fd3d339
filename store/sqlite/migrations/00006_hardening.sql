-- +goose Up
-- A deleted client keeps its row, so that its id is never used again: not
-- by a new client, and not by a public client naming itself.
ALTER TABLE clients ADD COLUMN deleted_at INTEGER;

-- A new signing key is published before it signs: every instance reads it
-- from the change feed first. NULL means from its creation.
ALTER TABLE signing_keys ADD COLUMN active_from INTEGER;

-- Settings every process on the store must agree on, such as a check value
-- of the key encryption key the signing keys are sealed with.
CREATE TABLE settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- An access token is revoked once: revoking it again adds nothing to the
-- feed.
DELETE FROM changes WHERE kind = 'access_token' AND seq NOT IN
    (SELECT min(seq) FROM changes WHERE kind = 'access_token' GROUP BY subject);
CREATE UNIQUE INDEX changes_revoked_access ON changes (subject) WHERE kind = 'access_token';

-- +goose Down
DROP INDEX changes_revoked_access;
DROP TABLE settings;
ALTER TABLE signing_keys DROP COLUMN active_from;
ALTER TABLE clients DROP COLUMN deleted_at;
