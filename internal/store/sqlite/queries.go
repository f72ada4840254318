package sqlite

// The driver's SQL, one constant per statement, grouped by concern. Lists of
// values are passed as one JSON array and read with json_each, so no SQL is
// assembled at run time. Numbered parameters (?1) repeat a value.
//
// This file holds every statement the methods run (connection setup aside),
// so the SQL reads in one place. Go constants, not embedded .sql files: the
// shared column lists (messageCols, ...) are joined in at compile time, in
// the order the scanners read them, where .sql files would repeat them or
// need templating at run time; and a misspelt name fails the build.

// messages.state: 0 queued, 1 leased, 2 final (see the migration).

// Instance.
const (
	qGetInstance = `
SELECT name, api_token, edition, bounce_enabled, bounce_imap_host, bounce_imap_port, bounce_imap_user,
       bounce_imap_password, bounce_imap_folder, bounce_imap_ssl, bounce_poll_interval, bounce_return_path,
       created_at, updated_at
FROM instance WHERE id = 1`

	qPutInstance = `
INSERT INTO instance (id, name, api_token, edition, bounce_enabled, bounce_imap_host, bounce_imap_port,
                      bounce_imap_user, bounce_imap_password, bounce_imap_folder, bounce_imap_ssl,
                      bounce_poll_interval, bounce_return_path, created_at, updated_at)
VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, api_token = excluded.api_token, edition = excluded.edition,
    bounce_enabled = excluded.bounce_enabled, bounce_imap_host = excluded.bounce_imap_host,
    bounce_imap_port = excluded.bounce_imap_port, bounce_imap_user = excluded.bounce_imap_user,
    bounce_imap_password = excluded.bounce_imap_password, bounce_imap_folder = excluded.bounce_imap_folder,
    bounce_imap_ssl = excluded.bounce_imap_ssl, bounce_poll_interval = excluded.bounce_poll_interval,
    bounce_return_path = excluded.bounce_return_path, updated_at = excluded.updated_at`
)

// Tenants.
const (
	tenantCols = `id, name, client_auth, client_base_url, client_sync_path, client_attachment_path, rate_limits,
       large_file_config, active, api_key_hash, api_key_expires_at, signing_secret, prev_signing_secret,
       prev_signing_secret_until, created_at, updated_at, client_url_by_tenant`

	qTenantExists = `SELECT 1 FROM tenants WHERE id = ?`

	qUpsertTenant = `
INSERT INTO tenants (id, name, client_auth, client_base_url, client_sync_path, client_attachment_path,
                     rate_limits, large_file_config, active, created_at, updated_at, client_url_by_tenant)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, client_auth = excluded.client_auth, client_base_url = excluded.client_base_url,
    client_sync_path = excluded.client_sync_path, client_attachment_path = excluded.client_attachment_path,
    rate_limits = excluded.rate_limits, large_file_config = excluded.large_file_config,
    active = excluded.active, updated_at = excluded.updated_at,
    client_url_by_tenant = excluded.client_url_by_tenant`

	qGetTenant = `SELECT ` + tenantCols + ` FROM tenants WHERE id = ?`

	qListTenants = `SELECT ` + tenantCols + ` FROM tenants WHERE (?1 = 0 OR active = 1) ORDER BY id`

	qTenantByAPIKey = `
SELECT ` + tenantCols + ` FROM tenants
WHERE api_key_hash = ?1 AND api_key_hash <> '' AND (api_key_expires_at IS NULL OR api_key_expires_at > ?2)
ORDER BY id LIMIT 1`

	qDeleteTenant = `DELETE FROM tenants WHERE id = ?`

	qDeleteTenantIdempotency = `DELETE FROM idempotency WHERE scope = 'tenant:' || ?`

	qSetAPIKey = `UPDATE tenants SET api_key_hash = ?1, api_key_expires_at = ?2, updated_at = ?3 WHERE id = ?4`

	qSetSigningSecret = `
UPDATE tenants
SET prev_signing_secret = signing_secret, prev_signing_secret_until = ?1, signing_secret = ?2, updated_at = ?3
WHERE id = ?4`

	qClearSigningSecrets = `
UPDATE tenants
SET signing_secret = '', prev_signing_secret = '', prev_signing_secret_until = NULL, updated_at = ?1
WHERE id = ?2`

	qSuspendedOf  = `SELECT batch_code FROM suspended_batches WHERE tenant_id = ? ORDER BY batch_code`
	qAllSuspended = `SELECT tenant_id, batch_code FROM suspended_batches ORDER BY tenant_id, batch_code`

	qSuspendAdd      = `INSERT INTO suspended_batches (tenant_id, batch_code) VALUES (?, ?) ON CONFLICT DO NOTHING`
	qSuspendClear    = `DELETE FROM suspended_batches WHERE tenant_id = ?`
	qSuspendRemove   = `DELETE FROM suspended_batches WHERE tenant_id = ? AND batch_code = ?`
	qSuspendedAll    = `SELECT 1 FROM suspended_batches WHERE tenant_id = ? AND batch_code = '*'`
	qPendingOfTenant = `
SELECT count(*) FROM messages
WHERE tenant_id = ?1 AND final_at IS NULL AND (?2 IS NULL OR batch_code = ?2)`
)

// Accounts.
const (
	accountCols = `tenant_id, id, host, port, username, password, ttl, limit_per_minute, limit_per_hour,
       limit_per_day, limit_behavior, use_tls, tls_verify, batch_size, is_pec_account, imap_host, imap_port,
       imap_user, imap_password, imap_ssl, created_at, updated_at, dkim_domain, dkim_selector, dkim_private_key,
       host_by_tenant`

	qAccountExists = `SELECT 1 FROM accounts WHERE tenant_id = ? AND id = ?`

	qUpsertAccount = `
INSERT INTO accounts (` + accountCols + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    host = excluded.host, port = excluded.port, username = excluded.username, password = excluded.password,
    ttl = excluded.ttl, limit_per_minute = excluded.limit_per_minute, limit_per_hour = excluded.limit_per_hour,
    limit_per_day = excluded.limit_per_day, limit_behavior = excluded.limit_behavior,
    use_tls = excluded.use_tls, tls_verify = excluded.tls_verify, batch_size = excluded.batch_size,
    is_pec_account = excluded.is_pec_account, imap_host = excluded.imap_host, imap_port = excluded.imap_port,
    imap_user = excluded.imap_user, imap_password = excluded.imap_password, imap_ssl = excluded.imap_ssl,
    updated_at = excluded.updated_at, dkim_domain = excluded.dkim_domain, dkim_selector = excluded.dkim_selector,
    dkim_private_key = excluded.dkim_private_key, host_by_tenant = excluded.host_by_tenant`

	qGetAccount    = `SELECT ` + accountCols + ` FROM accounts WHERE tenant_id = ? AND id = ?`
	qListAccounts  = `SELECT ` + accountCols + ` FROM accounts WHERE (?1 = '' OR tenant_id = ?1) ORDER BY tenant_id, id`
	qDeleteAccount = `DELETE FROM accounts WHERE tenant_id = ? AND id = ?`
)

// Messages.
const (
	messageCols = `m.pk, m.tenant_id, m.id, m.account_id, m.priority, m.payload, m.batch_code, m.deferred_until,
       m.final_at, m.retry_count, m.rejected_at_enqueue, m.lease_owner, m.lease_until, m.attempt,
       m.created_at, m.updated_at`

	// messageColsBare is messageCols for RETURNING, which takes no table alias.
	messageColsBare = `pk, tenant_id, id, account_id, priority, payload, batch_code, deferred_until,
       final_at, retry_count, rejected_at_enqueue, lease_owner, lease_until, attempt, created_at, updated_at`

	// qEnqueue inserts a queued message or replaces an unprocessed (or
	// rejected-at-enqueue) one without a live lease, keeping pk, created_at
	// and seq. No row comes back when the existing row must stay unchanged.
	qEnqueue = `
INSERT INTO messages AS m (pk, tenant_id, id, account_id, priority, payload, batch_code, state, deferred_until,
                           created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?9)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    account_id = excluded.account_id, priority = excluded.priority, payload = excluded.payload,
    batch_code = excluded.batch_code, deferred_until = excluded.deferred_until, state = 0,
    final_at = NULL, final_type = NULL, retry_count = 0, rejected_at_enqueue = 0,
    lease_owner = NULL, lease_until = NULL, updated_at = excluded.updated_at
WHERE (m.final_at IS NULL OR m.rejected_at_enqueue = 1)
  AND (m.lease_owner IS NULL OR m.lease_until IS NULL OR m.lease_until <= ?9)
RETURNING pk`

	// qEnqueueRejected stores a rejected item as an error unless the
	// existing row was processed by delivery.
	qEnqueueRejected = `
INSERT INTO messages AS m (pk, tenant_id, id, account_id, priority, payload, batch_code, state, deferred_until,
                           final_at, final_type, rejected_at_enqueue, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 2, ?8, ?9, 'error', 1, ?9, ?9)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    account_id = excluded.account_id, priority = excluded.priority, payload = excluded.payload,
    batch_code = excluded.batch_code, deferred_until = excluded.deferred_until, state = 2,
    final_at = excluded.final_at, final_type = 'error', retry_count = 0, rejected_at_enqueue = 1,
    lease_owner = NULL, lease_until = NULL, updated_at = excluded.updated_at
WHERE m.final_at IS NULL OR m.rejected_at_enqueue = 1
RETURNING pk`

	qMessageBlock = `SELECT pk, final_at IS NOT NULL AND rejected_at_enqueue = 0 FROM messages WHERE tenant_id = ? AND id = ?`

	qInsertEvent = `
INSERT INTO events (message_pk, tenant_id, type, at, description, metadata) VALUES (?, ?, ?, ?, ?, ?)`

	qListMessages = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE (?1 = '' OR m.tenant_id = ?1) AND (?2 = 0 OR m.final_at IS NULL)
ORDER BY m.priority, m.created_at, m.id, m.seq
LIMIT ?3 OFFSET ?4`

	// qListMessagesAfter is one page of a tenant's listing after a
	// position, read from the messages_list index.
	qListMessagesAfter = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE m.tenant_id = ?1 AND (m.priority, m.created_at, m.id) > (?3, ?4, ?5) AND (?2 = 0 OR m.final_at IS NULL)
ORDER BY m.priority, m.created_at, m.id
LIMIT ?6`

	// qGetMessage is a message by client id, as qListMessages lists it; with
	// tenant '' the first in listing order of any tenant. The tenant comes
	// from a subquery, not an "?1 = '' OR" term, so the lookup stays on the
	// (tenant_id, id) index.
	qGetMessage = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE m.tenant_id IN (SELECT id FROM tenants WHERE ?1 = '' OR id = ?1) AND m.id = ?2
ORDER BY m.priority, m.created_at, m.id, m.seq
LIMIT 1`

	// qBatchPending counts a batch's unprocessed messages, of one tenant or
	// (tenant '') all, reading messages_list per tenant.
	qBatchPending = `
SELECT count(*) FROM messages
WHERE tenant_id IN (SELECT id FROM tenants WHERE ?1 = '' OR id = ?1) AND final_at IS NULL AND batch_code = ?2`

	qEventsOfMessages = `
SELECT ` + eventCols + `
FROM events e JOIN messages m ON m.pk = e.message_pk
WHERE e.message_pk IN (SELECT value FROM json_each(?1))
ORDER BY e.at, e.id`

	qDeleteMessage = `DELETE FROM messages WHERE tenant_id = ? AND id = ?`

	qIDsAnywhere = `SELECT DISTINCT id FROM messages WHERE id IN (SELECT value FROM json_each(?1))`

	// qCleanup picks finished messages whose events are all reported and
	// whose latest event was reported before the cutoff.
	qCleanup = `
DELETE FROM messages WHERE seq IN (
    SELECT m.seq FROM messages m
    WHERE m.state = 2 AND (?1 = '' OR m.tenant_id = ?1)
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.reported_at IS NULL)
      AND (SELECT e.reported_at FROM events e WHERE e.message_pk = m.pk ORDER BY e.at DESC, e.id DESC LIMIT 1) < ?2
    LIMIT ?3)`

	// qAuthPayloads pages, by seq, through the messages whose payload may
	// carry attachment auth (the caller decodes to be sure).
	qAuthPayloads       = `SELECT seq, payload FROM messages WHERE seq > ? AND instr(payload, '"auth"') > 0 ORDER BY seq LIMIT ?`
	qUpdatePayloadBySeq = `UPDATE messages SET payload = ? WHERE seq = ?`

	qCountUnprocessed = `
SELECT (SELECT count(*) FROM messages WHERE state = 0) + (SELECT count(*) FROM messages WHERE state = 1)`

	qStatsTenants  = `SELECT id FROM tenants WHERE (?1 = '' OR id = ?1) ORDER BY id`
	qStatsAccounts = `SELECT tenant_id, count(*) FROM accounts WHERE (?1 = '' OR tenant_id = ?1) GROUP BY tenant_id`
	qStatsMessages = `
SELECT tenant_id,
       coalesce(sum(final_at IS NULL AND (deferred_until IS NULL OR deferred_until <= ?2)), 0),
       coalesce(sum(final_at IS NULL AND deferred_until > ?2), 0),
       coalesce(sum(final_type = 'sent'), 0),
       coalesce(sum(final_type = 'error'), 0)
FROM messages WHERE (?1 = '' OR tenant_id = ?1) GROUP BY tenant_id`
)

// Delivery.
const (
	// qRescueExpired returns expired leases to the claim index. Owner and
	// attempt stay, so the rows look the same to readers and outcomes.
	qRescueExpired = `UPDATE messages SET state = 0 WHERE state = 1 AND lease_until <= ?1`

	// qClaimCandidates walks the claim index from a keyset position. ?6 is a
	// JSON array of [tenant, account] pairs to leave out.
	qClaimCandidates = `
SELECT m.seq, m.tenant_id, m.account_id, m.priority, m.created_at, a.batch_size
FROM messages m
LEFT JOIN accounts a ON a.tenant_id = m.tenant_id AND a.id = m.account_id
WHERE m.state = 0
  AND (m.priority, m.created_at, m.seq) > (?3, ?4, ?5)
  AND (m.deferred_until IS NULL OR m.deferred_until <= ?1)
  AND (?2 = '' OR m.tenant_id = ?2)
  AND NOT EXISTS (SELECT 1 FROM suspended_batches s
                  WHERE s.tenant_id = m.tenant_id AND s.batch_code IN ('*', m.batch_code))
  AND NOT EXISTS (SELECT 1 FROM json_each(?6) x
                  WHERE x.value ->> 0 = m.tenant_id AND x.value ->> 1 = m.account_id)
ORDER BY m.priority, m.created_at, m.seq
LIMIT ?7`

	// qNextQueuedAccount is the first account after (?1, ?2) with a queued
	// message: one seek in messages_claim_accounts.
	qNextQueuedAccount = `
SELECT tenant_id, account_id FROM messages INDEXED BY messages_claim_accounts
WHERE state = 0 AND (tenant_id, account_id) > (?1, ?2)
ORDER BY tenant_id, account_id
LIMIT 1`

	qClaimRows = `
UPDATE messages
SET state = 1, lease_owner = ?1, lease_until = ?2, attempt = attempt + 1, deferred_until = NULL, updated_at = ?3
WHERE seq IN (SELECT value FROM json_each(?4))
RETURNING ` + messageColsBare + `, seq`

	qRenewLease = `
UPDATE messages SET lease_until = ?1, state = 1
WHERE pk IN (SELECT value FROM json_each(?2)) AND lease_owner = ?3 AND final_at IS NULL
RETURNING pk`

	// qOutcomeFinal ends an attempt as sent or error; ?2 NULL keeps retry_count.
	qOutcomeFinal = `
UPDATE messages
SET state = 2, final_at = ?1, final_type = ?6, retry_count = coalesce(?2, retry_count),
    lease_owner = NULL, lease_until = NULL, updated_at = ?1
WHERE pk = ?3 AND lease_owner = ?4 AND attempt = ?5
RETURNING tenant_id`

	// qOutcomeRequeue ends an attempt back in the queue (deferred or
	// released); NULL parameters keep the column.
	qOutcomeRequeue = `
UPDATE messages
SET state = 0, deferred_until = coalesce(?1, deferred_until), retry_count = coalesce(?2, retry_count),
    lease_owner = NULL, lease_until = NULL, updated_at = ?3
WHERE pk = ?4 AND lease_owner = ?5 AND attempt = ?6
RETURNING tenant_id`

	qReleaseClaims = `
UPDATE messages SET state = 0, lease_owner = NULL, lease_until = NULL, updated_at = ?2
WHERE state = 1 AND (?1 = '' OR lease_owner = ?1)`

	qNextDue = `
SELECT (SELECT m.deferred_until FROM messages m
        WHERE m.state = 0 AND m.deferred_until > ?1
          AND NOT EXISTS (SELECT 1 FROM suspended_batches s
                          WHERE s.tenant_id = m.tenant_id AND s.batch_code IN ('*', m.batch_code))
        ORDER BY m.deferred_until LIMIT 1),
       (SELECT lease_until FROM messages WHERE state = 1 AND lease_until > ?1 ORDER BY lease_until LIMIT 1)`

	qLastEvent = `
SELECT ` + eventCols + `
FROM events e JOIN messages m ON m.pk = e.message_pk
WHERE e.message_pk = ? ORDER BY e.at DESC, e.id DESC LIMIT 1`
)

// Rate limits.
const (
	qRateCount = `
SELECT count FROM rate_counters WHERE tenant_id = ? AND account_id = ? AND span = ? AND window_start = ?`

	qRateIncrement = `
INSERT INTO rate_counters (tenant_id, account_id, span, window_start, window_end, count)
VALUES (?, ?, ?, ?, ?, 1)
ON CONFLICT (tenant_id, account_id, span, window_start) DO UPDATE SET count = count + 1`

	qRateRelease = `
UPDATE rate_counters SET count = max(count - 1, 0)
WHERE tenant_id = ?1 AND account_id = ?2
  AND ((span = 'minute' AND window_start = ?3) OR (span = 'hour' AND window_start = ?4)
       OR (span = 'day' AND window_start = ?5))`

	qRateUsage = `
SELECT span, count FROM rate_counters
WHERE tenant_id = ?1 AND account_id = ?2
  AND ((span = 'minute' AND window_start = ?3) OR (span = 'hour' AND window_start = ?4)
       OR (span = 'day' AND window_start = ?5))`
)

// Reports and sync state.
const (
	eventCols = `e.id, e.message_pk, e.tenant_id, m.id, e.type, e.at, e.description, e.metadata, e.reported_at`

	qUnreportedEvents = `
SELECT ` + eventCols + `
FROM events e JOIN messages m ON m.pk = e.message_pk
WHERE e.tenant_id = ?1 AND e.reported_at IS NULL
ORDER BY e.at, e.id LIMIT ?2`

	// A skip scan over the partial unreported-events index: one index seek
	// per tenant, however many events wait (DISTINCT walked all of them).
	qTenantsWithUnreported = `
WITH RECURSIVE t(id) AS (
    SELECT (SELECT min(tenant_id) FROM events WHERE reported_at IS NULL)
    UNION ALL
    SELECT (SELECT min(tenant_id) FROM events WHERE reported_at IS NULL AND tenant_id > t.id)
    FROM t WHERE t.id IS NOT NULL
)
SELECT id FROM t WHERE id IS NOT NULL`

	qCountUnreported = `SELECT count(*) FROM events WHERE reported_at IS NULL AND (?1 = '' OR tenant_id = ?1)`

	qMarkReported = `UPDATE events SET reported_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))`

	qGetSyncState = `
SELECT last_sync_at, dnd_until, consecutive_failures, next_retry_at, last_error, queued_streak
FROM sync_state WHERE tenant_id = ?`

	qPutSyncState = `
INSERT INTO sync_state (tenant_id, last_sync_at, dnd_until, consecutive_failures, next_retry_at, last_error,
                        queued_streak)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id) DO UPDATE SET
    last_sync_at = excluded.last_sync_at, dnd_until = excluded.dnd_until,
    consecutive_failures = excluded.consecutive_failures, next_retry_at = excluded.next_retry_at,
    last_error = excluded.last_error, queued_streak = excluded.queued_streak`

	qAcquireReportLease = `
INSERT INTO sync_state AS s (tenant_id, report_lease_owner, report_lease_until) VALUES (?1, ?2, ?4)
ON CONFLICT (tenant_id) DO UPDATE SET
    report_lease_owner = excluded.report_lease_owner, report_lease_until = excluded.report_lease_until
WHERE s.report_lease_owner IS NULL OR s.report_lease_until IS NULL OR s.report_lease_until < ?3
   OR s.report_lease_owner = ?2
RETURNING 1`

	qReleaseReportLease = `
UPDATE sync_state SET report_lease_owner = NULL, report_lease_until = NULL
WHERE tenant_id = ? AND report_lease_owner = ?`
)

// Command log, idempotency, housekeeping.
const (
	qAppendCommand = `
INSERT INTO command_log (at, endpoint, tenant_id, payload, response_status, response_body, caller)
VALUES (?, ?, ?, ?, ?, ?, ?)`

	commandFilter = `
FROM command_log
WHERE (?1 = '' OR tenant_id = ?1) AND (?2 IS NULL OR at >= ?2) AND (?3 IS NULL OR at <= ?3)
  AND (?4 = '' OR instr(lower(endpoint), lower(?4)) > 0)`

	qListCommandsNewest = `
SELECT id, at, endpoint, tenant_id, payload, response_status, response_body, caller` + commandFilter + `
ORDER BY at DESC, id DESC LIMIT ?5`

	qListCommandsOldest = `
SELECT id, at, endpoint, tenant_id, payload, response_status, response_body, caller` + commandFilter + `
ORDER BY at, id LIMIT ?5`

	qBeginIdempotent = `
INSERT INTO idempotency (scope, key, body_hash, status, response, created_at) VALUES (?, ?, ?, 0, NULL, ?)
ON CONFLICT (scope, key) DO NOTHING`

	qGetIdempotent = `
SELECT scope, key, body_hash, status, response, created_at FROM idempotency WHERE scope = ? AND key = ?`

	qFinishIdempotent = `UPDATE idempotency SET status = ?, response = ? WHERE scope = ? AND key = ?`

	qAbortIdempotent = `DELETE FROM idempotency WHERE scope = ? AND key = ? AND status = 0`

	qPurgeIdempotency = `DELETE FROM idempotency WHERE created_at < ?`
	qPurgeRates       = `DELETE FROM rate_counters WHERE window_end < ?`
)

// Retry of deferred messages.

// qRetryDeferred clears the deferral of a tenant's retry-deferred messages;
// ?3 NULL means every batch.
const qRetryDeferred = `
UPDATE messages SET deferred_until = NULL, updated_at = ?2
WHERE tenant_id = ?1 AND state = 0 AND retry_count > 0 AND deferred_until > ?2
  AND (?3 IS NULL OR batch_code = ?3)`

// Dashboard reads (store.Store.Overview, SearchMessages).
const (
	// qOverviewCounts: the state partition of /stats per account, plus the
	// processed messages with a bounce event (probed on events_message).
	qOverviewCounts = `
SELECT m.tenant_id, m.account_id,
       coalesce(sum(m.final_at IS NULL AND (m.deferred_until IS NULL OR m.deferred_until <= ?2)), 0),
       coalesce(sum(m.final_at IS NULL AND m.deferred_until > ?2), 0),
       coalesce(sum(m.final_type = 'sent'), 0),
       coalesce(sum(m.final_type = 'error'), 0),
       coalesce(sum(m.state = 2 AND EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.type = 'bounce')), 0)
FROM messages m WHERE (?1 = '' OR m.tenant_id = ?1)
GROUP BY m.tenant_id, m.account_id ORDER BY m.tenant_id, m.account_id`

	// qOldestDue walks the claim index's rows (state 0 = queued).
	qOldestDue = `
SELECT ` + messageCols + `
FROM messages m
WHERE m.state = 0 AND (?1 = '' OR m.tenant_id = ?1) AND (m.deferred_until IS NULL OR m.deferred_until <= ?2)
ORDER BY coalesce(m.deferred_until, m.created_at), m.seq
LIMIT 1`

	// qThroughput ranges over messages_final (tenant_id, final_at) per tenant.
	qThroughput = `
SELECT m.final_at / 60000, coalesce(sum(m.final_type = 'sent'), 0), coalesce(sum(m.final_type = 'error'), 0)
FROM messages m
WHERE m.state = 2 AND m.tenant_id IN (SELECT id FROM tenants WHERE ?1 = '' OR id = ?1)
  AND m.final_at >= ?2 AND m.final_at <= ?3 AND m.rejected_at_enqueue = 0
GROUP BY 1 ORDER BY 1`

	// qSearchMessages filters by the optional fields of store.MessageSearch.
	qSearchMessages = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE (?1 = '' OR m.tenant_id = ?1) AND (?2 = '' OR m.account_id = ?2) AND (?3 = '' OR m.id = ?3)
  AND (?4 = '' OR m.batch_code = ?4)
  AND (?5 = ''
       OR (?5 = 'pending' AND m.final_at IS NULL AND (m.deferred_until IS NULL OR m.deferred_until <= ?6))
       OR (?5 = 'deferred' AND m.final_at IS NULL AND m.deferred_until > ?6)
       OR (?5 = 'sent' AND m.final_type = 'sent')
       OR (?5 = 'error' AND m.final_type = 'error')
       OR (?5 = 'bounced' AND m.state = 2 AND EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.type = 'bounce')))
  AND (?7 = '' OR json_extract(m.payload, '$.subject') LIKE ?7 ESCAPE '\'
       OR json_extract(m.payload, '$.to') LIKE ?7 ESCAPE '\'
       OR json_extract(m.payload, '$.cc') LIKE ?7 ESCAPE '\'
       OR json_extract(m.payload, '$.bcc') LIKE ?7 ESCAPE '\')
ORDER BY m.seq DESC
LIMIT ?8 OFFSET ?9`
)

// Suppressions and bounces.
const (
	qAddSuppression = `
INSERT INTO suppressions (tenant_id, address, reason, source, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, address) DO NOTHING`
	qListSuppressions = `
SELECT tenant_id, address, reason, source, created_at FROM suppressions WHERE tenant_id = ? ORDER BY address`
	qRemoveSuppression = `DELETE FROM suppressions WHERE tenant_id = ? AND address = ?`
	qSuppressedAmong   = `
SELECT address FROM suppressions WHERE tenant_id = ?1 AND address IN (SELECT value FROM json_each(?2))`
	qFindByPK       = `SELECT ` + messageCols + ` FROM messages m WHERE m.pk = ?`
	qFindByClientID = `
SELECT ` + messageCols + ` FROM messages m
WHERE m.tenant_id IN (SELECT id FROM tenants) AND m.id = ?
ORDER BY m.created_at DESC, m.seq DESC LIMIT 50`
	qMessageTenant = `SELECT tenant_id FROM messages WHERE pk = ?`
	qAddBounce     = `
INSERT INTO events (message_pk, tenant_id, type, at, description, metadata)
SELECT ?1, ?2, 'bounce', ?3, ?4, ?5
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.message_pk = ?1 AND e.type = 'bounce'
                  AND e.description = ?4 AND e.metadata IS ?5)`
	qAcquireLease = `
INSERT INTO leases AS l (name, owner, until_ms) VALUES (?1, ?2, ?4)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms
WHERE l.until_ms <= ?3 OR l.owner = ?2
RETURNING 1`
)
