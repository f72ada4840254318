-- Who last set a tenant's client_base_url: true = its own API key, false = the
-- admin token (or a row from before this column). A tenant-set origin meets
-- the public-only address policy unless GMP_CLIENT_URL_ALLOW_PRIVATE (issue 11.1).

-- +goose Up
ALTER TABLE tenants ADD COLUMN client_url_by_tenant BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE tenants DROP COLUMN client_url_by_tenant;
