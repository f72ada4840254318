-- Initial schema. Times are BIGINT Unix milliseconds. JSON values are TEXT so
-- they come back byte for byte as stored (the SQLite driver does the same);
-- nothing queries inside them. Keys and sorted names use COLLATE "C" so
-- listings order bytewise on every server locale, as SQLite does.

-- +goose Up
CREATE TABLE instance (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    name                 TEXT    NOT NULL,
    api_token            TEXT    NOT NULL DEFAULT '',
    edition              TEXT    NOT NULL,
    bounce_enabled       BOOLEAN NOT NULL DEFAULT false,
    bounce_imap_host     TEXT,
    bounce_imap_port     INTEGER NOT NULL,
    bounce_imap_user     TEXT,
    bounce_imap_password TEXT    NOT NULL DEFAULT '',
    bounce_imap_folder   TEXT    NOT NULL,
    bounce_imap_ssl      BOOLEAN NOT NULL DEFAULT false,
    bounce_poll_interval INTEGER NOT NULL,
    bounce_return_path   TEXT,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL
);

CREATE TABLE tenants (
    id                        TEXT COLLATE "C" PRIMARY KEY,
    name                      TEXT,
    client_auth               TEXT,
    client_base_url           TEXT,
    client_sync_path          TEXT,
    client_attachment_path    TEXT,
    rate_limits               TEXT,
    large_file_config         TEXT,
    active                    BOOLEAN NOT NULL,
    api_key_hash              TEXT    NOT NULL DEFAULT '',
    api_key_expires_at        BIGINT,
    signing_secret            TEXT    NOT NULL DEFAULT '',
    prev_signing_secret       TEXT    NOT NULL DEFAULT '',
    prev_signing_secret_until BIGINT,
    created_at                BIGINT  NOT NULL,
    updated_at                BIGINT  NOT NULL
);

CREATE INDEX tenants_api_key ON tenants (api_key_hash) WHERE api_key_hash <> '';

-- One row per suspended batch code; '*' suspends the whole tenant.
CREATE TABLE suspended_batches (
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    batch_code TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, batch_code)
);

CREATE TABLE accounts (
    tenant_id        TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               TEXT COLLATE "C" NOT NULL,
    host             TEXT    NOT NULL,
    port             INTEGER NOT NULL,
    username         TEXT    NOT NULL DEFAULT '',
    password         TEXT    NOT NULL DEFAULT '',
    ttl              INTEGER NOT NULL,
    limit_per_minute INTEGER,
    limit_per_hour   INTEGER,
    limit_per_day    INTEGER,
    limit_behavior   TEXT    NOT NULL,
    use_tls          BOOLEAN,
    tls_verify       BOOLEAN NOT NULL,
    batch_size       INTEGER,
    is_pec_account   BOOLEAN NOT NULL DEFAULT false,
    imap_host        TEXT,
    imap_port        INTEGER,
    imap_user        TEXT,
    imap_password    TEXT    NOT NULL DEFAULT '',
    imap_ssl         BOOLEAN,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- state: 0 queued (claimable once due), 1 leased, 2 final (final_at and final_type set).
-- seq breaks created_at ties in FIFO (insertion) order.
CREATE TABLE messages (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pk                  TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant_id           TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                  TEXT COLLATE "C" NOT NULL,
    account_id          TEXT COLLATE "C" NOT NULL,
    priority            BIGINT   NOT NULL,
    payload             TEXT,
    batch_code          TEXT COLLATE "C",
    state               SMALLINT NOT NULL,
    deferred_until      BIGINT,
    final_at            BIGINT,
    final_type          TEXT, -- 'sent' or 'error' once final
    retry_count         INTEGER  NOT NULL DEFAULT 0,
    rejected_at_enqueue BOOLEAN  NOT NULL DEFAULT false,
    lease_owner         TEXT,
    lease_until         BIGINT,
    attempt             INTEGER  NOT NULL DEFAULT 0,
    created_at          BIGINT   NOT NULL,
    updated_at          BIGINT   NOT NULL,
    UNIQUE (tenant_id, id)
);

-- A queue table churns: every claim and outcome leaves dead row versions.
-- Vacuum and analyse it after 1 % of its rows changed (default 20 % / 10 %),
-- so the claim index stays lean and the planner knows the queue's size.
ALTER TABLE messages SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);

-- The claim index holds only queued rows, so claims never scan past leased or
-- finished ones (architecture.md, performance notes).
CREATE INDEX messages_claim ON messages (priority, created_at, seq) WHERE state = 0;
-- Leased rows by lease expiry: lease rescue and NextDue.
CREATE INDEX messages_leased ON messages (lease_until) WHERE state = 1;
-- Queued rows waiting for a deferral: NextDue.
CREATE INDEX messages_deferred ON messages (deferred_until) WHERE state = 0 AND deferred_until IS NOT NULL;
-- Finished rows per tenant: retention cleanup.
CREATE INDEX messages_final ON messages (tenant_id, final_at) WHERE state = 2;

CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_pk  TEXT COLLATE "C" NOT NULL REFERENCES messages (pk) ON DELETE CASCADE,
    tenant_id   TEXT COLLATE "C" NOT NULL,
    type        TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    metadata    TEXT,
    reported_at BIGINT
);

CREATE INDEX events_message ON events (message_pk, at, id);
CREATE INDEX events_unreported ON events (tenant_id, at, id) WHERE reported_at IS NULL;

-- Fixed epoch-aligned windows: span is 'minute', 'hour' or 'day'.
CREATE TABLE rate_counters (
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id   TEXT COLLATE "C" NOT NULL,
    span         TEXT    NOT NULL,
    window_start BIGINT  NOT NULL,
    window_end   BIGINT  NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, account_id, span, window_start)
);

CREATE INDEX rate_counters_end ON rate_counters (window_end);

CREATE TABLE sync_state (
    tenant_id            TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    last_sync_at         BIGINT,
    dnd_until            BIGINT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_retry_at        BIGINT,
    last_error           TEXT    NOT NULL DEFAULT '',
    queued_streak        INTEGER NOT NULL DEFAULT 0,
    report_lease_owner   TEXT,
    report_lease_until   BIGINT
);

-- Kept until purged: no foreign key to tenants.
CREATE TABLE command_log (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              BIGINT  NOT NULL,
    endpoint        TEXT    NOT NULL,
    tenant_id       TEXT COLLATE "C",
    payload         TEXT,
    response_status INTEGER NOT NULL,
    response_body   TEXT
);

CREATE INDEX command_log_at ON command_log (at);

CREATE TABLE idempotency (
    scope      TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    body_hash  TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    response   TEXT,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_created ON idempotency (created_at);
