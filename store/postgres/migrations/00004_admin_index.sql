-- +goose Up
-- The enabled accounts holding users:admin, found without reading every
-- user: start-up and every change to an account ask whether one remains.
-- The queries repeat this WHERE clause word for word (sqlstore.adminRow).
CREATE INDEX users_admins ON users (id) WHERE NOT disabled AND (' ' || scopes || ' ') LIKE '% users:admin %';

-- +goose Down
DROP INDEX users_admins;
