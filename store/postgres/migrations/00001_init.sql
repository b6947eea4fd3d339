-- +goose Up
CREATE TABLE users (
    id            text        NOT NULL PRIMARY KEY,
    username      text        NOT NULL UNIQUE,
    password_hash text        NOT NULL,
    scopes        text[]      NOT NULL DEFAULT '{}',
    disabled      boolean     NOT NULL DEFAULT false,
    token_version bigint      NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE items (
    user_id    text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key        text        NOT NULL,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE signing_keys (
    id          text        NOT NULL PRIMARY KEY,
    algorithm   text        NOT NULL,
    private_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz
);

-- The change feed every instance follows. Writers append under one
-- advisory lock held to commit, so seq order is commit order.
CREATE TABLE changes (
    seq        bigserial   NOT NULL PRIMARY KEY,
    kind       text        NOT NULL,
    subject    text        NOT NULL,
    expires_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX changes_kind_expiry ON changes (kind, expires_at);

CREATE TABLE refresh_families (
    id            text        NOT NULL PRIMARY KEY,
    user_id       text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id     text        NOT NULL,
    scopes        text[]      NOT NULL,
    token_version bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    hash       bytea       NOT NULL PRIMARY KEY,
    family_id  text        NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE clients (
    id          text        NOT NULL PRIMARY KEY,
    secret_hash text        NOT NULL DEFAULT '',
    grant_types text[]      NOT NULL,
    scopes      text[]      NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE login_failures (
    key          text        NOT NULL PRIMARY KEY,
    failures     integer     NOT NULL,
    window_start timestamptz NOT NULL,
    last_failure timestamptz NOT NULL
);

-- +goose Down
DROP TABLE login_failures;
DROP TABLE clients;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE changes;
DROP TABLE signing_keys;
DROP TABLE items;
DROP TABLE users;
