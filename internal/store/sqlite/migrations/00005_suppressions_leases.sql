-- Suppression list per tenant and named leases (issue 16.1, 16.2).

-- +goose Up
-- address is lower-cased by the drivers; source: bounce, complaint, manual.
CREATE TABLE suppressions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    address    TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    source     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, address)
) STRICT;

-- One holder at a time per name (e.g. the bounce poller), until until_ms.
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    until_ms INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE leases;
DROP TABLE suppressions;
