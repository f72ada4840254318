package postgres

// The driver's SQL, one constant per statement, grouped by concern. Lists of
// values are passed as arrays ($1::text[]) and read with ANY or unnest, so no
// SQL is assembled at run time. Every statement is prepared once per
// connection and cached by pgx.
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
VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
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
	// tenantCols end with the tenant's suspended batch codes, read in the
	// same statement (one snapshot).
	tenantCols = `t.id, t.name, t.client_auth, t.client_base_url, t.client_sync_path, t.client_attachment_path,
       t.rate_limits, t.large_file_config, t.active, t.api_key_hash, t.api_key_expires_at, t.signing_secret,
       t.prev_signing_secret, t.prev_signing_secret_until, t.created_at, t.updated_at, t.client_url_by_tenant,
       ARRAY(SELECT s.batch_code FROM suspended_batches s WHERE s.tenant_id = t.id ORDER BY s.batch_code)`

	// qUpsertTenant reports whether the row is new: xmax is 0 only on a
	// freshly inserted row version.
	qUpsertTenant = `
INSERT INTO tenants AS t (id, name, client_auth, client_base_url, client_sync_path, client_attachment_path,
                          rate_limits, large_file_config, active, created_at, updated_at, client_url_by_tenant)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, client_auth = excluded.client_auth, client_base_url = excluded.client_base_url,
    client_sync_path = excluded.client_sync_path, client_attachment_path = excluded.client_attachment_path,
    rate_limits = excluded.rate_limits, large_file_config = excluded.large_file_config,
    active = excluded.active, updated_at = excluded.updated_at,
    client_url_by_tenant = excluded.client_url_by_tenant
RETURNING (t.xmax = 0)`

	qGetTenant = `SELECT ` + tenantCols + ` FROM tenants t WHERE t.id = $1`

	qListTenants = `SELECT ` + tenantCols + ` FROM tenants t WHERE (NOT $1::boolean OR t.active) ORDER BY t.id`

	qTenantByAPIKey = `
SELECT ` + tenantCols + ` FROM tenants t
WHERE t.api_key_hash = $1 AND t.api_key_hash <> '' AND (t.api_key_expires_at IS NULL OR t.api_key_expires_at > $2)
ORDER BY t.id LIMIT 1`

	qDeleteTenant = `DELETE FROM tenants WHERE id = $1`

	qDeleteTenantIdempotency = `DELETE FROM idempotency WHERE scope = 'tenant:' || $1::text`

	qSetAPIKey = `UPDATE tenants SET api_key_hash = $1, api_key_expires_at = $2, updated_at = $3 WHERE id = $4`

	qSetSigningSecret = `
UPDATE tenants
SET prev_signing_secret = signing_secret, prev_signing_secret_until = $1, signing_secret = $2, updated_at = $3
WHERE id = $4`

	qClearSigningSecrets = `
UPDATE tenants
SET signing_secret = '', prev_signing_secret = '', prev_signing_secret_until = NULL, updated_at = $1
WHERE id = $2`

	// qLockTenant serialises suspension changes of one tenant.
	qLockTenant = `SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`

	qSuspendedOf     = `SELECT batch_code FROM suspended_batches WHERE tenant_id = $1 ORDER BY batch_code`
	qSuspendAdd      = `INSERT INTO suspended_batches (tenant_id, batch_code) VALUES ($1, $2) ON CONFLICT DO NOTHING`
	qSuspendClear    = `DELETE FROM suspended_batches WHERE tenant_id = $1`
	qSuspendRemove   = `DELETE FROM suspended_batches WHERE tenant_id = $1 AND batch_code = $2`
	qSuspendedAll    = `SELECT EXISTS (SELECT 1 FROM suspended_batches WHERE tenant_id = $1 AND batch_code = '*')`
	qPendingOfTenant = `
SELECT count(*) FROM messages
WHERE tenant_id = $1 AND final_at IS NULL AND ($2::text IS NULL OR batch_code = $2::text)`

	qNotifyWork = `SELECT pg_notify('` + workChannel + `', '')`
	qListen     = `LISTEN ` + workChannel
)

// Accounts.
const (
	accountCols = `a.tenant_id, a.id, a.host, a.port, a.username, a.password, a.ttl, a.limit_per_minute,
       a.limit_per_hour, a.limit_per_day, a.limit_behavior, a.use_tls, a.tls_verify, a.batch_size,
       a.is_pec_account, a.imap_host, a.imap_port, a.imap_user, a.imap_password, a.imap_ssl, a.created_at,
       a.updated_at, a.dkim_domain, a.dkim_selector, a.dkim_private_key, a.host_by_tenant`

	qUpsertAccount = `
INSERT INTO accounts (tenant_id, id, host, port, username, password, ttl, limit_per_minute, limit_per_hour,
                      limit_per_day, limit_behavior, use_tls, tls_verify, batch_size, is_pec_account, imap_host,
                      imap_port, imap_user, imap_password, imap_ssl, created_at, updated_at, dkim_domain,
                      dkim_selector, dkim_private_key, host_by_tenant)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
        $23, $24, $25, $26)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    host = excluded.host, port = excluded.port, username = excluded.username, password = excluded.password,
    ttl = excluded.ttl, limit_per_minute = excluded.limit_per_minute, limit_per_hour = excluded.limit_per_hour,
    limit_per_day = excluded.limit_per_day, limit_behavior = excluded.limit_behavior,
    use_tls = excluded.use_tls, tls_verify = excluded.tls_verify, batch_size = excluded.batch_size,
    is_pec_account = excluded.is_pec_account, imap_host = excluded.imap_host, imap_port = excluded.imap_port,
    imap_user = excluded.imap_user, imap_password = excluded.imap_password, imap_ssl = excluded.imap_ssl,
    updated_at = excluded.updated_at, dkim_domain = excluded.dkim_domain, dkim_selector = excluded.dkim_selector,
    dkim_private_key = excluded.dkim_private_key, host_by_tenant = excluded.host_by_tenant`

	// claimAccountCols are accountCols for a LEFT JOIN: NOT NULL columns
	// read as zero values when the account is missing.
	claimAccountCols = `coalesce(a.tenant_id, ''), coalesce(a.id, ''), coalesce(a.host, ''), coalesce(a.port, 0),
       coalesce(a.username, ''), coalesce(a.password, ''), coalesce(a.ttl, 0), a.limit_per_minute,
       a.limit_per_hour, a.limit_per_day, coalesce(a.limit_behavior, ''), a.use_tls,
       coalesce(a.tls_verify, false), a.batch_size, coalesce(a.is_pec_account, false), a.imap_host, a.imap_port,
       a.imap_user, coalesce(a.imap_password, ''), a.imap_ssl, coalesce(a.created_at, 0),
       coalesce(a.updated_at, 0), coalesce(a.dkim_domain, ''), coalesce(a.dkim_selector, ''),
       coalesce(a.dkim_private_key, ''), coalesce(a.host_by_tenant, false)`

	qGetAccount    = `SELECT ` + accountCols + ` FROM accounts a WHERE a.tenant_id = $1 AND a.id = $2`
	qListAccounts  = `SELECT ` + accountCols + ` FROM accounts a WHERE ($1 = '' OR a.tenant_id = $1) ORDER BY a.tenant_id, a.id`
	qDeleteAccount = `DELETE FROM accounts WHERE tenant_id = $1 AND id = $2`
)

// Messages.
const (
	messageCols = `m.pk, m.tenant_id, m.id, m.account_id, m.priority, m.payload, m.batch_code, m.deferred_until,
       m.final_at, m.retry_count, m.rejected_at_enqueue, m.lease_owner, m.lease_until, m.attempt,
       m.created_at, m.updated_at`

	qTenantsExisting  = `SELECT id FROM tenants WHERE id = ANY($1::text[])`
	qAccountsExisting = `
SELECT a.tenant_id, a.id FROM accounts a
JOIN unnest($1::text[], $2::text[]) AS u(tenant_id, id) ON a.tenant_id = u.tenant_id AND a.id = u.id`

	// enqueueInput is one round of a batch (distinct (tenant, id) keys) as
	// parallel arrays, numbered from messages_seq in request order (ord).
	enqueueInput = `
SELECT x.*, nextval('messages_seq') AS seq
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::bigint[],
            $9::text[])
    WITH ORDINALITY AS x(pk, tenant_id, id, account_id, priority, payload, batch_code, deferred_until, reason, ord)
ORDER BY x.ord`

	// qEnqueue inserts queued messages or replaces unprocessed (or
	// rejected-at-enqueue) ones without a live lease, keeping pk,
	// created_at and seq. Rows that must stay unchanged come back absent.
	// Rows are written in key order (one lock order for every batch); a new
	// row's seq keeps its request order.
	qEnqueue = `
WITH u AS MATERIALIZED (` + enqueueInput + `)
INSERT INTO messages AS m (seq, pk, tenant_id, id, account_id, priority, payload, batch_code, state,
                           deferred_until, created_at, updated_at)
SELECT u.seq, u.pk, u.tenant_id, u.id, u.account_id, u.priority, u.payload, u.batch_code, 0, u.deferred_until,
       $10, $10
FROM u
ORDER BY u.tenant_id, u.id
ON CONFLICT (tenant_id, id) DO UPDATE SET
    account_id = excluded.account_id, priority = excluded.priority, payload = excluded.payload,
    batch_code = excluded.batch_code, deferred_until = excluded.deferred_until, state = 0,
    final_at = NULL, final_type = NULL, retry_count = 0, rejected_at_enqueue = false,
    lease_owner = NULL, lease_until = NULL, updated_at = excluded.updated_at
WHERE (m.final_at IS NULL OR m.rejected_at_enqueue)
  AND (m.lease_owner IS NULL OR m.lease_until IS NULL OR m.lease_until <= $10)
RETURNING m.tenant_id, m.id, m.pk`

	// qEnqueueRejected stores rejected items as errors (unless processed by
	// delivery) and adds one error event each, in request order.
	qEnqueueRejected = `
WITH u AS MATERIALIZED (` + enqueueInput + `),
ins AS (
    INSERT INTO messages AS m (seq, pk, tenant_id, id, account_id, priority, payload, batch_code, state,
                               deferred_until, final_at, final_type, rejected_at_enqueue, created_at, updated_at)
    SELECT u.seq, u.pk, u.tenant_id, u.id, u.account_id, u.priority, u.payload, u.batch_code, 2,
           u.deferred_until, $10, 'error', true, $10, $10
    FROM u ORDER BY u.tenant_id, u.id
    ON CONFLICT (tenant_id, id) DO UPDATE SET
        account_id = excluded.account_id, priority = excluded.priority, payload = excluded.payload,
        batch_code = excluded.batch_code, deferred_until = excluded.deferred_until, state = 2,
        final_at = excluded.final_at, final_type = 'error', retry_count = 0, rejected_at_enqueue = true,
        lease_owner = NULL, lease_until = NULL, updated_at = excluded.updated_at
    WHERE m.final_at IS NULL OR m.rejected_at_enqueue
    RETURNING m.tenant_id, m.id, m.pk
),
ev AS (
    INSERT INTO events (message_pk, tenant_id, type, at, description)
    SELECT ins.pk, ins.tenant_id, 'error', $10, u.reason
    FROM ins JOIN u ON u.tenant_id = ins.tenant_id AND u.id = ins.id
    ORDER BY u.ord
)
SELECT tenant_id, id, pk FROM ins`

	qMessageBlocks = `
SELECT m.tenant_id, m.id, m.pk, m.final_at IS NOT NULL AND NOT m.rejected_at_enqueue
FROM messages m
JOIN unnest($1::text[], $2::text[]) AS u(tenant_id, id) ON m.tenant_id = u.tenant_id AND m.id = u.id`

	qListMessages = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE ($1 = '' OR m.tenant_id = $1) AND (NOT $2::boolean OR m.final_at IS NULL)
ORDER BY m.priority, m.created_at, m.id, m.seq
LIMIT $3 OFFSET $4`

	// qListMessagesAfter is one page of a tenant's listing after a
	// position, read from the messages_list index.
	qListMessagesAfter = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE m.tenant_id = $1 AND (m.priority, m.created_at, m.id) > ($3, $4, $5) AND (NOT $2::boolean OR m.final_at IS NULL)
ORDER BY m.priority, m.created_at, m.id
LIMIT $6`

	// qGetMessage is a message by client id, as qListMessages lists it; with
	// tenant '' the first in listing order of any tenant. The tenant comes
	// from a subquery, not an "$1 = '' OR" term, so the lookup stays on the
	// (tenant_id, id) index.
	qGetMessage = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE m.tenant_id IN (SELECT id FROM tenants WHERE $1 = '' OR id = $1) AND m.id = $2
ORDER BY m.priority, m.created_at, m.id, m.seq
LIMIT 1`

	// qBatchPending counts a batch's unprocessed messages, of one tenant or
	// (tenant '') all, reading messages_list per tenant.
	qBatchPending = `
SELECT count(*) FROM messages
WHERE tenant_id IN (SELECT id FROM tenants WHERE $1 = '' OR id = $1) AND final_at IS NULL AND batch_code = $2`

	qEventsOfMessages = `
SELECT ` + eventCols + `
FROM events e JOIN messages m ON m.pk = e.message_pk
WHERE e.message_pk = ANY($1::text[])
ORDER BY e.at, e.id`

	qDeleteMessages = `
DELETE FROM messages WHERE tenant_id = $1 AND id = ANY($2::text[])
RETURNING id`

	qIDsAnywhere = `SELECT DISTINCT id FROM messages WHERE id = ANY($1::text[])`

	// qAuthPayloads pages, by seq, through the messages whose payload may
	// carry attachment auth (the caller decodes to be sure); FOR UPDATE keeps
	// a concurrent upsert from being overwritten with the old payload.
	qAuthPayloads       = `SELECT seq, payload FROM messages WHERE seq > $1 AND strpos(payload, '"auth"') > 0 ORDER BY seq LIMIT $2 FOR UPDATE`
	qUpdatePayloadBySeq = `UPDATE messages SET payload = $1 WHERE seq = $2`

	// qCleanup deletes finished messages whose events are all reported and
	// whose latest event was reported before the cutoff.
	qCleanup = `
DELETE FROM messages WHERE seq IN (
    SELECT m.seq FROM messages m
    WHERE m.state = 2 AND ($1 = '' OR m.tenant_id = $1)
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.reported_at IS NULL)
      AND (SELECT e.reported_at FROM events e WHERE e.message_pk = m.pk ORDER BY e.at DESC, e.id DESC LIMIT 1) < $2
    LIMIT $3)`

	// Two counts so each uses its partial index.
	qCountUnprocessed = `
SELECT (SELECT count(*) FROM messages WHERE state = 0) + (SELECT count(*) FROM messages WHERE state = 1)`

	qStats = `
SELECT t.id,
       (SELECT count(*) FROM accounts a WHERE a.tenant_id = t.id),
       coalesce(ms.pending, 0), coalesce(ms.deferred, 0), coalesce(ms.sent, 0), coalesce(ms.errors, 0)
FROM tenants t
LEFT JOIN (
    SELECT tenant_id,
           count(*) FILTER (WHERE final_at IS NULL AND (deferred_until IS NULL OR deferred_until <= $2)) AS pending,
           count(*) FILTER (WHERE final_at IS NULL AND deferred_until > $2) AS deferred,
           count(*) FILTER (WHERE final_type = 'sent') AS sent,
           count(*) FILTER (WHERE final_type = 'error') AS errors
    FROM messages WHERE ($1 = '' OR tenant_id = $1) GROUP BY tenant_id
) ms ON ms.tenant_id = t.id
WHERE ($1 = '' OR t.id = $1)
ORDER BY t.id`
)

// Delivery.
const (
	// qRescueExpired returns expired leases to the claim index. Owner and
	// attempt stay, so the rows look the same to readers and outcomes. Rows
	// another transaction holds are left for the next claim.
	qRescueExpired = `
UPDATE messages SET state = 0
WHERE seq IN (SELECT seq FROM messages WHERE state = 1 AND lease_until <= $1 FOR UPDATE SKIP LOCKED)`

	// qClaim is one page of a claim:
	//  - locked: due, unsuspended, not excluded rows after the keyset
	//    position, in claim order, locked; rows others hold are skipped;
	//  - ranked: each row's place within its account on this page plus what
	//    earlier pages took, against the account's cap (batch_size, else
	//    the request's per-account cap; <= 0 = none);
	//  - chosen: the best rows within their caps, up to the page's limit;
	//  - claimed: the lease stamped on them.
	// Each returned row carries the claimed message, its account (NULLs if
	// missing), and the page's scan size and last position for the next page.
	//
	// $1 now, $2 tenant filter, $3-$5 keyset position, $6/$7 excluded
	// (tenant, account) pairs, $8 page size, $9 per-account cap, $10-$12
	// (tenant, account, taken) of earlier pages, $13 rows wanted, $14 owner,
	// $15 lease end.
	qClaim = `
WITH locked AS (
    SELECT m.seq, m.tenant_id, m.account_id, m.priority, m.created_at
    FROM messages m
    WHERE m.state = 0
      AND (m.priority, m.created_at, m.seq) > ($3, $4, $5)
      AND (m.deferred_until IS NULL OR m.deferred_until <= $1)
      AND ($2 = '' OR m.tenant_id = $2)
      AND NOT EXISTS (SELECT 1 FROM suspended_batches s
                      WHERE s.tenant_id = m.tenant_id AND s.batch_code IN ('*', m.batch_code))
      AND NOT EXISTS (SELECT 1 FROM unnest($6::text[], $7::text[]) AS x(tenant_id, account_id)
                      WHERE x.tenant_id = m.tenant_id AND x.account_id = m.account_id)
    ORDER BY m.priority, m.created_at, m.seq
    LIMIT $8
    FOR UPDATE OF m SKIP LOCKED
),
ranked AS (
    SELECT l.seq, l.priority, l.created_at,
           row_number() OVER (PARTITION BY l.tenant_id, l.account_id ORDER BY l.priority, l.created_at, l.seq)
               + coalesce(p.taken, 0) AS place,
           CASE WHEN a.batch_size > 0 THEN a.batch_size ELSE $9::integer END AS cap
    FROM locked l
    LEFT JOIN accounts a ON a.tenant_id = l.tenant_id AND a.id = l.account_id
    LEFT JOIN unnest($10::text[], $11::text[], $12::integer[]) AS p(tenant_id, account_id, taken)
           ON p.tenant_id = l.tenant_id AND p.account_id = l.account_id
),
chosen AS (
    SELECT seq FROM ranked WHERE cap <= 0 OR place <= cap
    ORDER BY priority, created_at, seq
    LIMIT $13
),
claimed AS (
    UPDATE messages m
    SET state = 1, lease_owner = $14, lease_until = $15, attempt = m.attempt + 1, deferred_until = NULL,
        updated_at = $1
    FROM chosen c WHERE m.seq = c.seq
    RETURNING m.*
),
scan AS (SELECT count(*) AS n FROM locked),
tail AS (SELECT priority, created_at, seq FROM locked ORDER BY priority DESC, created_at DESC, seq DESC LIMIT 1)
SELECT ` + messageCols + `, a.tenant_id IS NOT NULL, ` + claimAccountCols + `,
       scan.n, tail.priority, tail.created_at, tail.seq
FROM claimed m
LEFT JOIN accounts a ON a.tenant_id = m.tenant_id AND a.id = m.account_id
CROSS JOIN scan CROSS JOIN tail
ORDER BY m.priority, m.created_at, m.seq`

	// qClaimPlan keeps the claim on the claim index's order for the rest of
	// its transaction. Without it, a planner that underestimates the queue
	// (a table filled faster than autovacuum analyses it) picks a bitmap
	// scan and sorts the whole queue on every claim: with 100,000 queued
	// rows each claim took 100 ms instead of 4. (enable_sort = off would
	// also penalise the window's unavoidable sort.)
	qClaimPlan = `SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`

	qRenewLease = `
UPDATE messages SET lease_until = $1, state = 1
WHERE pk = ANY($2::text[]) AND lease_owner = $3 AND final_at IS NULL
RETURNING pk`

	// qOutcomeFinal ends an attempt as sent or error and adds its event;
	// $2 NULL keeps retry_count.
	qOutcomeFinal = `
WITH upd AS (
    UPDATE messages
    SET state = 2, final_at = $1, final_type = $6, retry_count = coalesce($2, retry_count),
        lease_owner = NULL, lease_until = NULL, updated_at = $1
    WHERE pk = $3 AND lease_owner = $4 AND attempt = $5
    RETURNING pk, tenant_id
),
ev AS (
    INSERT INTO events (message_pk, tenant_id, type, at, description, metadata)
    SELECT pk, tenant_id, $6, $1, $7, $8 FROM upd
)
SELECT tenant_id FROM upd`

	// qOutcomeRequeue ends an attempt back in the queue (deferred or
	// released); NULL parameters keep the column; $7 NULL adds no event.
	qOutcomeRequeue = `
WITH upd AS (
    UPDATE messages
    SET state = 0, deferred_until = coalesce($1, deferred_until), retry_count = coalesce($2, retry_count),
        lease_owner = NULL, lease_until = NULL, updated_at = $3
    WHERE pk = $4 AND lease_owner = $5 AND attempt = $6
    RETURNING pk, tenant_id
),
ev AS (
    INSERT INTO events (message_pk, tenant_id, type, at, description, metadata)
    SELECT pk, tenant_id, $7, $3, $8, $9 FROM upd WHERE $7::text IS NOT NULL
)
SELECT tenant_id FROM upd`

	qReleaseClaims = `
UPDATE messages SET state = 0, lease_owner = NULL, lease_until = NULL, updated_at = $2
WHERE state = 1 AND ($1 = '' OR lease_owner = $1)`

	qNextDue = `
SELECT (SELECT m.deferred_until FROM messages m
        WHERE m.state = 0 AND m.deferred_until > $1
          AND NOT EXISTS (SELECT 1 FROM suspended_batches s
                          WHERE s.tenant_id = m.tenant_id AND s.batch_code IN ('*', m.batch_code))
        ORDER BY m.deferred_until LIMIT 1),
       (SELECT lease_until FROM messages WHERE state = 1 AND lease_until > $1 ORDER BY lease_until LIMIT 1)`

	qLastEvent = `
SELECT ` + eventCols + `
FROM events e JOIN messages m ON m.pk = e.message_pk
WHERE e.message_pk = $1 ORDER BY e.at DESC, e.id DESC LIMIT 1`
)

// Rate limits.
const (
	// qRateReserve takes one slot of one window if it is below the limit;
	// no row comes back when the window is full. The row lock taken by the
	// upsert makes concurrent reservations on other instances wait and
	// then see the new count.
	qRateReserve = `
INSERT INTO rate_counters AS r (tenant_id, account_id, span, window_start, window_end, count)
VALUES ($1, $2, $3, $4, $5, 1)
ON CONFLICT (tenant_id, account_id, span, window_start) DO UPDATE SET count = r.count + 1
WHERE r.count < $6
RETURNING r.count`

	qRateRelease = `
UPDATE rate_counters SET count = greatest(count - 1, 0)
WHERE tenant_id = $1 AND account_id = $2 AND span = $3 AND window_start = $4`

	qRateUsage = `
SELECT span, count FROM rate_counters
WHERE tenant_id = $1 AND account_id = $2
  AND ((span = 'minute' AND window_start = $3) OR (span = 'hour' AND window_start = $4)
       OR (span = 'day' AND window_start = $5))`
)

// Reports and sync state.
const (
	eventCols = `e.id, e.message_pk, e.tenant_id, m.id, e.type, e.at, e.description, e.metadata, e.reported_at`

	qUnreportedEvents = `
SELECT ` + eventCols + `
FROM events e JOIN messages m ON m.pk = e.message_pk
WHERE e.tenant_id = $1 AND e.reported_at IS NULL
ORDER BY e.at, e.id LIMIT $2`

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

	qCountUnreported = `SELECT count(*) FROM events WHERE reported_at IS NULL AND ($1 = '' OR tenant_id = $1)`

	qMarkReported = `UPDATE events SET reported_at = $1 WHERE id = ANY($2::bigint[])`

	qGetSyncState = `
SELECT last_sync_at, dnd_until, consecutive_failures, next_retry_at, last_error, queued_streak
FROM sync_state WHERE tenant_id = $1`

	qPutSyncState = `
INSERT INTO sync_state (tenant_id, last_sync_at, dnd_until, consecutive_failures, next_retry_at, last_error,
                        queued_streak)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id) DO UPDATE SET
    last_sync_at = excluded.last_sync_at, dnd_until = excluded.dnd_until,
    consecutive_failures = excluded.consecutive_failures, next_retry_at = excluded.next_retry_at,
    last_error = excluded.last_error, queued_streak = excluded.queued_streak`

	// qAcquireReportLease takes the tenant's report slot if it is free,
	// expired or already the owner's. The upsert's row lock makes it
	// exclusive across instances: a competitor waits, then re-evaluates the
	// condition against the winner's row and gets no row back.
	qAcquireReportLease = `
INSERT INTO sync_state AS s (tenant_id, report_lease_owner, report_lease_until) VALUES ($1, $2, $4)
ON CONFLICT (tenant_id) DO UPDATE SET
    report_lease_owner = excluded.report_lease_owner, report_lease_until = excluded.report_lease_until
WHERE s.report_lease_owner IS NULL OR s.report_lease_until IS NULL OR s.report_lease_until < $3
   OR s.report_lease_owner = $2
RETURNING 1`

	qReleaseReportLease = `
UPDATE sync_state SET report_lease_owner = NULL, report_lease_until = NULL
WHERE tenant_id = $1 AND report_lease_owner = $2`
)

// Command log, idempotency, housekeeping.
const (
	qAppendCommand = `
INSERT INTO command_log (at, endpoint, tenant_id, payload, response_status, response_body, caller)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

	commandFilter = `
FROM command_log
WHERE ($1 = '' OR tenant_id = $1) AND ($2::bigint IS NULL OR at >= $2::bigint)
  AND ($3::bigint IS NULL OR at <= $3::bigint)
  AND ($4 = '' OR strpos(lower(endpoint), lower($4)) > 0)`

	qListCommandsNewest = `
SELECT id, at, endpoint, tenant_id, payload, response_status, response_body, caller` + commandFilter + `
ORDER BY at DESC, id DESC LIMIT $5`

	qListCommandsOldest = `
SELECT id, at, endpoint, tenant_id, payload, response_status, response_body, caller` + commandFilter + `
ORDER BY at, id LIMIT $5`

	qBeginIdempotent = `
INSERT INTO idempotency (scope, key, body_hash, status, response, created_at) VALUES ($1, $2, $3, 0, NULL, $4)
ON CONFLICT (scope, key) DO NOTHING`

	qGetIdempotent = `
SELECT scope, key, body_hash, status, response, created_at FROM idempotency WHERE scope = $1 AND key = $2`

	qFinishIdempotent = `UPDATE idempotency SET status = $1, response = $2 WHERE scope = $3 AND key = $4`

	qAbortIdempotent = `DELETE FROM idempotency WHERE scope = $1 AND key = $2 AND status = 0`

	qPurgeIdempotency = `DELETE FROM idempotency WHERE created_at < $1`
	qPurgeRates       = `DELETE FROM rate_counters WHERE window_end < $1`
)

// Retry of deferred messages.

// qRetryDeferred clears the deferral of a tenant's retry-deferred messages;
// $3 NULL means every batch.
const qRetryDeferred = `
UPDATE messages SET deferred_until = NULL, updated_at = $2
WHERE tenant_id = $1 AND state = 0 AND retry_count > 0 AND deferred_until > $2
  AND ($3::text IS NULL OR batch_code = $3)`

// Dashboard reads (store.Store.Overview, SearchMessages).
const (
	// qOverviewCounts: the state partition of /stats per account, plus the
	// processed messages with a bounce event (probed on events_message).
	qOverviewCounts = `
SELECT m.tenant_id, m.account_id,
       count(*) FILTER (WHERE m.final_at IS NULL AND (m.deferred_until IS NULL OR m.deferred_until <= $2)),
       count(*) FILTER (WHERE m.final_at IS NULL AND m.deferred_until > $2),
       count(*) FILTER (WHERE m.final_type = 'sent'),
       count(*) FILTER (WHERE m.final_type = 'error'),
       count(*) FILTER (WHERE m.state = 2 AND EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.type = 'bounce'))
FROM messages m WHERE ($1 = '' OR m.tenant_id = $1)
GROUP BY m.tenant_id, m.account_id ORDER BY m.tenant_id, m.account_id`

	// qOldestDue walks the queued rows (state 0, the claim index's).
	qOldestDue = `
SELECT ` + messageCols + `
FROM messages m
WHERE m.state = 0 AND ($1 = '' OR m.tenant_id = $1) AND (m.deferred_until IS NULL OR m.deferred_until <= $2)
ORDER BY coalesce(m.deferred_until, m.created_at), m.seq
LIMIT 1`

	// qThroughput ranges over messages_final (tenant_id, final_at) per tenant.
	qThroughput = `
SELECT m.final_at / 60000 AS minute, count(*) FILTER (WHERE m.final_type = 'sent'), count(*) FILTER (WHERE m.final_type = 'error')
FROM messages m
WHERE m.state = 2 AND m.tenant_id IN (SELECT id FROM tenants WHERE $1 = '' OR id = $1)
  AND m.final_at >= $2 AND m.final_at <= $3 AND NOT m.rejected_at_enqueue
GROUP BY 1 ORDER BY 1`

	// qSearchMessages filters by the optional fields of store.MessageSearch.
	// Payloads are always JSON written by the enqueue path, so the cast holds.
	qSearchMessages = `
SELECT ` + messageCols + `, t.name
FROM messages m JOIN tenants t ON t.id = m.tenant_id
WHERE ($1 = '' OR m.tenant_id = $1) AND ($2 = '' OR m.account_id = $2) AND ($3 = '' OR m.id = $3)
  AND ($4 = '' OR m.batch_code = $4)
  AND ($5 = ''
       OR ($5 = 'pending' AND m.final_at IS NULL AND (m.deferred_until IS NULL OR m.deferred_until <= $6))
       OR ($5 = 'deferred' AND m.final_at IS NULL AND m.deferred_until > $6)
       OR ($5 = 'sent' AND m.final_type = 'sent')
       OR ($5 = 'error' AND m.final_type = 'error')
       OR ($5 = 'bounced' AND m.state = 2 AND EXISTS (SELECT 1 FROM events e WHERE e.message_pk = m.pk AND e.type = 'bounce')))
  AND ($7 = '' OR (m.payload::jsonb ->> 'subject') ILIKE $7 ESCAPE '\'
       OR (m.payload::jsonb -> 'to')::text ILIKE $7 ESCAPE '\'
       OR (m.payload::jsonb -> 'cc')::text ILIKE $7 ESCAPE '\'
       OR (m.payload::jsonb -> 'bcc')::text ILIKE $7 ESCAPE '\')
ORDER BY m.seq DESC
LIMIT $8 OFFSET $9`
)

// Suppressions and bounces.
const (
	qAddSuppression = `
INSERT INTO suppressions (tenant_id, address, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, address) DO NOTHING`
	qListSuppressions = `
SELECT tenant_id, address, reason, source, created_at FROM suppressions WHERE tenant_id = $1 ORDER BY address`
	qRemoveSuppression = `DELETE FROM suppressions WHERE tenant_id = $1 AND address = $2`
	qSuppressedAmong   = `SELECT address FROM suppressions WHERE tenant_id = $1 AND address = ANY($2::text[])`
	qFindByPK          = `SELECT ` + messageCols + ` FROM messages m WHERE m.pk = $1`
	qFindByClientID    = `
SELECT ` + messageCols + ` FROM messages m
WHERE m.tenant_id IN (SELECT id FROM tenants) AND m.id = $1
ORDER BY m.created_at DESC LIMIT 50`
	qAddBounce = `
INSERT INTO events (message_pk, tenant_id, type, at, description, metadata)
SELECT m.pk, m.tenant_id, 'bounce', $2, $3, $4 FROM messages m
WHERE m.pk = $1 AND NOT EXISTS (
    SELECT 1 FROM events e WHERE e.message_pk = $1 AND e.type = 'bounce'
    AND e.description = $3 AND e.metadata IS NOT DISTINCT FROM $4)`
	qMessageExists = `SELECT 1 FROM messages WHERE pk = $1`
	qAcquireLease  = `
INSERT INTO leases AS l (name, owner, until_ms) VALUES ($1, $2, $4)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms
WHERE l.until_ms <= $3 OR l.owner = $2
RETURNING 1`
)
