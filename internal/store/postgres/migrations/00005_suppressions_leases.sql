-- Suppression list per tenant and named leases (issue 16.1, 16.2).

-- +goose Up
-- address is lower-cased by the drivers; source: bounce, complaint, manual.
CREATE TABLE suppressions (
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    address    TEXT COLLATE "C" NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    source     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, address)
);

-- One holder at a time per name (e.g. the bounce poller), until until_ms.
CREATE TABLE leases (
    name     TEXT COLLATE "C" PRIMARY KEY,
    owner    TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE suppressions;
