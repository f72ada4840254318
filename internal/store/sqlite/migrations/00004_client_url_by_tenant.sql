-- Who last set a tenant's client_base_url: 1 = its own API key, 0 = the admin
-- token (or a row from before this column). A tenant-set origin meets the
-- public-only address policy unless GMP_CLIENT_URL_ALLOW_PRIVATE (issue 11.1).

-- +goose Up
ALTER TABLE tenants ADD COLUMN client_url_by_tenant INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE tenants DROP COLUMN client_url_by_tenant;
