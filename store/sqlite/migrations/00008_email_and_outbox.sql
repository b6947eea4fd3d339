-- +goose Up
-- Accounts may carry an email, unique by its case-folded form (email_key).
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_key TEXT;
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX users_email_key ON users (email_key);

-- Single-use tokens mailed to an account (verify its email, reset its
-- password), kept as hashes only.
CREATE TABLE email_tokens (
    hash       TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- Mails waiting to be sent: queued in the transaction of the change they
-- tell of, claimed by one sender at a time for a lease, then done.
CREATE TABLE mail_outbox (
    id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    user_id         TEXT,
    recipient       TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    last_error      TEXT,
    outcome         TEXT,
    done_at         INTEGER,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE done_at IS NULL;

-- +goose Down
DROP TABLE mail_outbox;
DROP TABLE email_tokens;
DROP INDEX users_email_key;
ALTER TABLE users DROP COLUMN email_verified;
ALTER TABLE users DROP COLUMN email_key;
ALTER TABLE users DROP COLUMN email;
