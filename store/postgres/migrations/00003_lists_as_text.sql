-- +goose Up
-- Lists of names are kept space-delimited, as the SQLite store keeps them,
-- so that one SQL layer serves both.
ALTER TABLE users ALTER COLUMN scopes DROP DEFAULT;
ALTER TABLE users ALTER COLUMN scopes TYPE text USING array_to_string(scopes, ' ');
ALTER TABLE users ALTER COLUMN scopes SET DEFAULT '';
ALTER TABLE refresh_families ALTER COLUMN scopes TYPE text USING array_to_string(scopes, ' ');
ALTER TABLE clients ALTER COLUMN grant_types TYPE text USING array_to_string(grant_types, ' ');
ALTER TABLE clients ALTER COLUMN scopes TYPE text USING array_to_string(scopes, ' ');

-- +goose Down
ALTER TABLE clients ALTER COLUMN scopes TYPE text[] USING string_to_array(scopes, ' ');
ALTER TABLE clients ALTER COLUMN grant_types TYPE text[] USING string_to_array(grant_types, ' ');
ALTER TABLE refresh_families ALTER COLUMN scopes TYPE text[] USING string_to_array(scopes, ' ');
ALTER TABLE users ALTER COLUMN scopes DROP DEFAULT;
ALTER TABLE users ALTER COLUMN scopes TYPE text[] USING string_to_array(scopes, ' ');
ALTER TABLE users ALTER COLUMN scopes SET DEFAULT '{}';
