-- +goose Up
-- A feed of changes every process applies to its in-memory state: an
-- account changed (its tokens may have to die), an access token was revoked,
-- the signing keys changed. Writers append in the same transaction as the
-- change itself.
CREATE TABLE changes (
    seq        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    expires_at INTEGER,            -- revoked access tokens: the token's expiry
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX changes_kind_expiry ON changes (kind, expires_at);

-- +goose Down
DROP TABLE changes;
