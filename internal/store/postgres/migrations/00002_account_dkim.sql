-- DKIM signing per account (issue 16.3). The private key is sealed by
-- internal/secret like the passwords; '' = no signing.

-- +goose Up
ALTER TABLE accounts ADD COLUMN dkim_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN dkim_selector TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN dkim_private_key TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE accounts DROP COLUMN dkim_private_key;
ALTER TABLE accounts DROP COLUMN dkim_selector;
ALTER TABLE accounts DROP COLUMN dkim_domain;
