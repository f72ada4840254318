-- Who last set an account's host: true = the tenant's own API key, false =
-- the admin token (or a row from before this column). With
-- GMP_ACCOUNT_TARGETS_PUBLIC_ONLY a tenant-set host is dialled through the
-- public-only address policy (issue 11.9).

-- +goose Up
ALTER TABLE accounts ADD COLUMN host_by_tenant INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE accounts DROP COLUMN host_by_tenant;
