-- +goose Up
-- Accounts may carry an email, unique by its case-folded form (email_key).
ALTER TABLE users ADD COLUMN email text;
ALTER TABLE users ADD COLUMN email_key text;
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX users_email_key ON users (email_key);

-- Single-use tokens mailed to an account (verify its email, reset its
-- password), kept as hashes only.
CREATE TABLE email_tokens (
    hash       text        NOT NULL PRIMARY KEY,
    user_id    text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL,
    email      text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- Mails waiting to be sent: queued in the transaction of the change they
-- tell of, claimed by one sender at a time for a lease, then done.
CREATE TABLE mail_outbox (
    id              bigserial   NOT NULL PRIMARY KEY,
    kind            text        NOT NULL,
    user_id         text,
    recipient       text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claimed_until   timestamptz,
    last_error      text,
    outcome         text,
    done_at         timestamptz,
    created_at      timestamptz NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE done_at IS NULL;

-- +goose Down
DROP TABLE mail_outbox;
DROP TABLE email_tokens;
DROP INDEX users_email_key;
ALTER TABLE users DROP COLUMN email_verified;
ALTER TABLE users DROP COLUMN email_key;
ALTER TABLE users DROP COLUMN email;
