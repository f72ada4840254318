-- The accounts that have queued messages, one index seek each (issue 15):
-- a claim whose per-account caps excluded every such account stops there
-- instead of scanning the excluded accounts' whole backlog for none.

-- +goose Up
CREATE INDEX messages_claim_accounts ON messages (tenant_id, account_id) WHERE state = 0;

-- +goose Down
DROP INDEX messages_claim_accounts;
