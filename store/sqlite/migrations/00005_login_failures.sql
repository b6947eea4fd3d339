-- +goose Up
-- Failed logins, counted per key: a (username, client IP) pair, a
-- username, or a client IP, each in a window starting at its first
-- failure. Keys hold hashes, not usernames or addresses.
CREATE TABLE login_failures (
    key          TEXT    NOT NULL PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    last_failure INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE login_failures;
