package api

import (
	"net/http"
	"reflect"

	"github.com/mailproxy/mailproxy/internal/auth"
)

// Common query parameters.
var (
	qTenant       = param{name: "tenant_id", kind: paramString, doc: "the tenant; required with the admin token, the key's own tenant by default"}
	qTenantOpt    = param{name: "tenant_id", kind: paramString, doc: "restrict to one tenant"}
	qBatchCode    = param{name: "batch_code", kind: paramString, doc: "one batch instead of the whole tenant"}
	qActiveOnly   = param{name: "active_only", kind: paramBool, def: false}
	qSince        = param{name: "since_ts", kind: paramInt, doc: "Unix seconds, inclusive"}
	qUntil        = param{name: "until_ts", kind: paramInt, doc: "Unix seconds, inclusive"}
	hIdempotency  = param{name: idempotencyHeader, kind: paramString, doc: "1..256 printable ASCII characters; replays the stored answer for 24 h"}
	zero          = int64(0)
	one           = int64(1)
	typeOK        = reflect.TypeFor[OKResponse]()
	tagCommands   = "commands"
	tagAccounts   = "accounts"
	tagTenants    = "tenants"
	tagInstance   = "instance"
	tagService    = "service"
	tagCommandLog = "command log"
)

// routes is the API: every endpoint of api.md §2, then the v0.7 aliases of §6.
func (s *server) routes() []*route {
	legacy := []*route{
		// Service.
		{method: http.MethodGet, path: "/health", id: "health", summary: "Liveness", tag: tagService,
			class: auth.Public, respType: reflect.TypeFor[HealthResponse](), handle: s.health},
		{method: http.MethodGet, path: "/ready", id: "ready", summary: "Readiness: the store answers", tag: tagService,
			class: auth.Public, respType: reflect.TypeFor[ReadyResponse](), errors: []int{503}, handle: s.ready},
		{method: http.MethodGet, path: "/metrics", id: "metrics", summary: "Prometheus metrics (text format 0.0.4)", tag: tagService,
			class: auth.Public, raw: s.d.Metrics.Handler()},
		{method: http.MethodGet, path: "/status", id: "status", summary: "Whether this instance runs dispatcher and reports", tag: tagService,
			class: auth.Any, respType: reflect.TypeFor[StatusResponse](), handle: s.status},
		{method: http.MethodGet, path: "/stats", id: "stats", summary: "Per-tenant message counts", tag: tagService,
			class: auth.Any, params: []param{qTenantOpt}, respType: reflect.TypeFor[StatsResponse](), handle: s.stats},

		// Commands.
		{method: http.MethodPost, path: "/commands/run-now", id: "runNow", summary: "Run a dispatch and report cycle now", tag: tagCommands,
			class: auth.Any, params: []param{{name: "tenant_id", kind: paramString, doc: "admin only: one tenant (default all)"}},
			respType: typeOK, handle: s.runNow},
		{method: http.MethodPost, path: "/commands/suspend", id: "suspend", summary: "Suspend a tenant or one of its batches", tag: tagCommands,
			class: auth.Tenant, tenant: tenantQuery, command: cmdSuspend, params: []param{qTenant, qBatchCode},
			respType: reflect.TypeFor[SuspendResponse](), errors: []int{400}, missingIs400: true, handle: s.suspend},
		{method: http.MethodPost, path: "/commands/activate", id: "activate", summary: "Resume a tenant or one of its batches", tag: tagCommands,
			class: auth.Tenant, tenant: tenantQuery, command: cmdActivate, params: []param{qTenant, qBatchCode},
			respType: reflect.TypeFor[SuspendResponse](), errors: []int{400}, missingIs400: true, handle: s.activate},
		{method: http.MethodPost, path: "/commands/retry-deferred", id: "retryDeferred",
			summary: "Make the tenant's (or one batch's) messages waiting for a retry due now", tag: tagCommands,
			class: auth.Tenant, tenant: tenantQuery, command: cmdRetryDeferred, params: []param{qTenant, qBatchCode},
			respType: reflect.TypeFor[RetryDeferredResponse](), errors: []int{400}, missingIs400: true, handle: s.retryDeferred},
		{method: http.MethodPost, path: "/commands/add-messages", id: "addMessages", summary: "Enqueue messages", tag: tagCommands,
			class: auth.Tenant, command: cmdAddMessages, body: bodyRequired, headers: []param{hIdempotency},
			reqType: reflect.TypeFor[AddMessagesRequest](), respType: reflect.TypeFor[AddMessagesResponse](),
			errors: []int{400, 409, 413, 503}, handle: s.addMessages},
		{method: http.MethodPost, path: "/commands/delete-messages", id: "deleteMessages", summary: "Delete messages by id", tag: tagCommands,
			class: auth.Tenant, tenant: tenantQuery, command: cmdDeleteMessages, params: []param{qTenant}, body: bodyOptional,
			reqType: reflect.TypeFor[DeleteMessagesRequest](), respType: reflect.TypeFor[DeleteMessagesResponse](),
			errors: []int{413}, handle: s.deleteMessages},
		{method: http.MethodPost, path: "/commands/cleanup-messages", id: "cleanupMessages", summary: "Delete processed, reported messages", tag: tagCommands,
			class: auth.Tenant, tenant: tenantQuery, command: cmdCleanupMessages, params: []param{qTenant}, body: bodyOptional,
			reqType: reflect.TypeFor[CleanupRequest](), respType: reflect.TypeFor[CleanupResponse](),
			errors: []int{413}, handle: s.cleanupMessages},

		// Accounts.
		{method: http.MethodPost, path: "/account", id: "addAccount", summary: "Create or replace an account (merge when host/port omitted on an existing one)", tag: tagAccounts,
			class: auth.Tenant, command: cmdAddAccount, body: bodyRequired,
			reqType: reflect.TypeFor[AccountPayload](), respType: typeOK, errors: []int{404, 413}, handle: s.addAccount},
		{method: http.MethodPut, path: "/account/{account_id}", id: "updateAccount", summary: "Update the named fields of an account", tag: tagAccounts,
			class: auth.Tenant, tenant: tenantQuery, command: cmdAddAccount, params: []param{qTenant}, body: bodyOptional,
			reqType: reflect.TypeFor[AccountUpdatePayload](), respType: typeOK, errors: []int{400, 413}, handle: s.updateAccount},
		{method: http.MethodGet, path: "/accounts", id: "listAccounts", summary: "List a tenant's accounts", tag: tagAccounts,
			class: auth.Tenant, tenant: tenantQuery, params: []param{qTenant},
			respType: reflect.TypeFor[AccountsResponse](), handle: s.listAccounts},
		{method: http.MethodDelete, path: "/account/{account_id}", id: "deleteAccount", summary: "Delete an account", tag: tagAccounts,
			class: auth.Tenant, tenant: tenantQuery, command: cmdDeleteAccount, params: []param{qTenant},
			respType: typeOK, errors: []int{400}, missingIs400: true, handle: s.deleteAccount},

		// Messages.
		{method: http.MethodGet, path: "/messages", id: "listMessages", summary: "List a tenant's messages", tag: tagCommands,
			class: auth.Tenant, tenant: tenantQuery, params: []param{qTenant,
				{name: "active_only", kind: paramBool, def: false, doc: "only unprocessed messages"},
				{name: "include_history", kind: paramBool, def: false, doc: "add each message's events"},
				{name: "limit", kind: paramInt, min: &zero, doc: "accepted and ignored, as by the original: the answer has every message (use page_size)"},
				{name: "offset", kind: paramInt, min: &zero, def: 0, doc: "accepted and ignored (use after)"},
				{name: "page_size", kind: paramInt, min: &one, doc: "ours: answer one page of at most this many (max 1000), with next_after"},
				{name: "after", kind: paramString, doc: "ours: the next_after of the previous page (implies page_size 100 if not given)"}},
			respType: reflect.TypeFor[MessagesResponse](), handle: s.listMessages},

		// Tenants.
		{method: http.MethodPost, path: "/tenant", id: "addTenant", summary: "Create or replace a tenant", tag: tagTenants,
			class: auth.Admin, command: cmdAddTenant, body: bodyRequired,
			reqType: reflect.TypeFor[TenantPayload](), respType: reflect.TypeFor[TenantCreatedResponse](), errors: []int{413}, handle: s.addTenant},
		{method: http.MethodGet, path: "/tenants", id: "listTenants", summary: "List tenants", tag: tagTenants,
			class: auth.Admin, params: []param{qActiveOnly}, respType: reflect.TypeFor[TenantsResponse](), handle: s.listTenants},
		{method: http.MethodGet, path: "/tenants/sync-status", id: "syncStatus", summary: "Client-sync state of every tenant", tag: tagTenants,
			class: auth.Admin, respType: reflect.TypeFor[SyncStatusResponse](), handle: s.syncStatus},
		{method: http.MethodGet, path: "/tenant/{tenant_id}", id: "getTenant", summary: "One tenant", tag: tagTenants,
			class: auth.Tenant, tenant: tenantPath, respType: reflect.TypeFor[TenantInfo](), errors: []int{404}, handle: s.getTenant},
		{method: http.MethodPut, path: "/tenant/{tenant_id}", id: "updateTenant", summary: "Change the given fields of a tenant", tag: tagTenants,
			class: auth.Tenant, tenant: tenantPath, command: cmdUpdateTenant, body: bodyOptional,
			reqType: reflect.TypeFor[TenantUpdatePayload](), respType: typeOK, errors: []int{404, 413}, handle: s.updateTenant},
		{method: http.MethodDelete, path: "/tenant/{tenant_id}", id: "deleteTenant", summary: "Delete a tenant with its accounts and messages", tag: tagTenants,
			class: auth.Admin, tenant: tenantPath, command: cmdDeleteTenant, respType: typeOK, errors: []int{404}, handle: s.deleteTenant},
		{method: http.MethodPost, path: "/tenant/{tenant_id}/api-key", id: "createApiKey", summary: "Issue a new API key (the old one stops working)", tag: tagTenants,
			class: auth.Admin, tenant: tenantPath, command: cmdCreateAPIKey, body: bodyOptional,
			reqType: reflect.TypeFor[APIKeyRequest](), respType: reflect.TypeFor[APIKeyResponse](), errors: []int{404, 413}, handle: s.createAPIKey},
		{method: http.MethodDelete, path: "/tenant/{tenant_id}/api-key", id: "revokeApiKey", summary: "Revoke the tenant's API key", tag: tagTenants,
			class: auth.Admin, tenant: tenantPath, command: cmdRevokeAPIKey, respType: typeOK, errors: []int{404}, handle: s.revokeAPIKey},
		{method: http.MethodPost, path: "/tenant/{tenant_id}/signing-secret", id: "createSigningSecret", summary: "Issue a report signing secret (the previous one signs for 24 h more)", tag: tagTenants,
			class: auth.Tenant, tenant: tenantPath, command: cmdCreateSigningSecret,
			respType: reflect.TypeFor[SigningSecretResponse](), errors: []int{404}, handle: s.createSigningSecret},
		{method: http.MethodDelete, path: "/tenant/{tenant_id}/signing-secret", id: "revokeSigningSecret", summary: "Remove the report signing secrets", tag: tagTenants,
			class: auth.Tenant, tenant: tenantPath, command: cmdRevokeSigningSecret, respType: typeOK, errors: []int{404}, handle: s.revokeSigningSecret},

		// Instance and command log.
		{method: http.MethodGet, path: "/instance", id: "getInstance", summary: "Instance settings", tag: tagInstance,
			class: auth.Admin, respType: reflect.TypeFor[InstanceInfo](), handle: s.getInstance},
		{method: http.MethodPut, path: "/instance", id: "updateInstance", summary: "Change instance settings or the admin token", tag: tagInstance,
			class: auth.Admin, command: cmdUpdateInstance, body: bodyOptional,
			reqType: reflect.TypeFor[InstanceUpdate](), respType: typeOK, errors: []int{413}, handle: s.updateInstance},
		{method: http.MethodPost, path: "/instance/reload-bounce", id: "reloadBounce", summary: "Reload the bounce settings", tag: tagInstance,
			class: auth.Admin, respType: typeOK, errors: []int{400}, handle: s.reloadBounce},
		{method: http.MethodPost, path: "/instance/upgrade-to-ee", id: "upgradeToEE", summary: "Enable every feature (one edition)", tag: tagInstance,
			class: auth.Admin, respType: reflect.TypeFor[UpgradeResponse](), handle: s.upgradeToEE},
		{method: http.MethodGet, path: "/command-log", id: "listCommandLog", summary: "Recorded commands, newest first", tag: tagCommandLog,
			class: auth.Admin, params: []param{qTenantOpt, qSince, qUntil,
				{name: "endpoint_filter", kind: paramString, doc: "substring of the command name"},
				{name: "limit", kind: paramInt, min: &one, def: 100}},
			respType: reflect.TypeFor[CommandLogResponse](), handle: s.listCommands},
		{method: http.MethodGet, path: "/command-log/export", id: "exportCommandLog", summary: "Recorded commands, oldest first, for replay", tag: tagCommandLog,
			class: auth.Admin, params: []param{qTenantOpt, qSince, qUntil},
			respType: reflect.TypeFor[CommandExportResponse](), handle: s.exportCommands},
	}
	legacy = append(legacy, s.suppressionRoutes()...)
	return append(append(legacy, s.v07Routes(legacy)...), s.dashboardRoutes()...)
}
