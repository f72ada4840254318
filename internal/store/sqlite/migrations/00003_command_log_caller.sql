-- Who made each recorded call ("admin" or "tenant:<id>" of the key), apart
-- from the tenant it targeted (tenant_id). Rows from before: ''.

-- +goose Up
ALTER TABLE command_log ADD COLUMN caller TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE command_log DROP COLUMN caller;
