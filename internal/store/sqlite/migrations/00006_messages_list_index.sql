-- GET /messages streams a tenant's listing page by page after a position
-- (priority, created_at, id); this index makes every page an index range.

-- +goose Up
CREATE INDEX messages_list ON messages (tenant_id, priority, created_at, id);

-- +goose Down
DROP INDEX messages_list;
