package api

// The original's v0.7 /{entity}/{method} aliases (api.md §6), mounted beside
// the legacy routes. Each alias is a copy of its legacy twin's route entry
// (auth class, scope, parameters, command-log name, answer type) with the
// v0.7 path and, where v0.7 moved an argument into the body or reshaped the
// answer, a thin handler that decodes the v0.7 arguments and calls the core
// operation behind the legacy handler (suspendTenant, removeAccount, ...);
// toAPIError gives both the same answers. Differences from the legacy twin,
// all from §6:
//  1. POST aliases take the tenant (and ids, batch_code, account_id) in the
//     JSON body; it is resolved and scope-checked exactly like the legacy
//     tenant_id query: required with the admin token, the key's own tenant by
//     default, another tenant's id refused with 401.
//  2. "Not found" is 404 (the legacy suspend, activate and delete-account
//     answer 400: their routes set missingIs400), with the legacy detail.
//  3. /messages/list is a bare array, /messages/count_* plain integers,
//     /messages/add answers {"id","pk"}, /messages/cleanup defaults to 86400 s.
//
// Where §6 does not fix a body shape, the alias answers what its legacy twin
// answers. Not mounted, so 404 (store.Store has no operation behind them and
// its interface is shared): GET /command_log/get (no get-by-id) and POST
// /command_log/purge (no purge); /storages/* is not provided.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

const (
	tagV07 = "v0.7 aliases"
	// v07CleanupDefault is v0.7's cleanup age when older_than_seconds is omitted.
	v07CleanupDefault = 86400
)

// Documentation types of the v0.7 bodies.

// V07TenantRequest names the tenant of a v0.7 POST alias.
type V07TenantRequest struct {
	_        struct{} `additionalProperties:"true"`
	TenantID *string  `json:"tenant_id,omitempty" doc:"required with the admin token; a key's own tenant by default"`
}

// V07SuspendRequest is the body of /instance/suspend, /instance/activate,
// /tenants/suspend_batch and /tenants/activate_batch.
type V07SuspendRequest struct {
	_         struct{} `additionalProperties:"true"`
	TenantID  *string  `json:"tenant_id,omitempty" doc:"required with the admin token; a key's own tenant by default"`
	BatchCode *string  `json:"batch_code,omitempty" nullable:"true" doc:"one batch instead of the whole tenant"`
}

// V07DeleteBatchRequest is /messages/delete_batch's body.
type V07DeleteBatchRequest struct {
	_        struct{} `additionalProperties:"true"`
	TenantID *string  `json:"tenant_id,omitempty" doc:"required with the admin token; a key's own tenant by default"`
	IDs      []string `json:"ids,omitempty" nullable:"false" doc:"client ids (default [])"`
}

// V07AccountRequest is /accounts/delete's body.
type V07AccountRequest struct {
	_         struct{} `additionalProperties:"true"`
	TenantID  *string  `json:"tenant_id,omitempty" doc:"required with the admin token; a key's own tenant by default"`
	AccountID string   `json:"account_id" minLength:"1"`
}

// V07TenantUpdateRequest is /tenants/update's body: the tenant and the
// fields to change (present non-null fields change).
type V07TenantUpdateRequest struct {
	_        struct{} `additionalProperties:"true"`
	TenantID *string  `json:"tenant_id,omitempty" doc:"required with the admin token; a key's own tenant by default"`
	TenantUpdatePayload
}

// V07APIKeyRequest is /tenants/create_api_key's body.
type V07APIKeyRequest struct {
	_         struct{} `additionalProperties:"true"`
	TenantID  string   `json:"tenant_id" minLength:"1"`
	ExpiresAt *int64   `json:"expires_at,omitempty" nullable:"true" doc:"Unix seconds; the key is dead from then on"`
}

// V07TenantIDRequest names the tenant of an admin-only v0.7 alias.
type V07TenantIDRequest struct {
	_        struct{} `additionalProperties:"true"`
	TenantID string   `json:"tenant_id" minLength:"1"`
}

// V07MessageAdded is /messages/add's answer.
type V07MessageAdded struct {
	ID string `json:"id"`
	PK string `json:"pk" doc:"the proxy's key of the stored message"`
}

// V07SuspendedBatches is /tenants/get_suspended_batches' answer (v0.7's shape).
type V07SuspendedBatches struct {
	OK               bool     `json:"ok"`
	TenantID         string   `json:"tenant_id"`
	SuspendedBatches []string `json:"suspended_batches" nullable:"false" doc:"[\"*\"] for a full suspension, else the sorted codes"`
}

// v07Routes are the aliases of api.md §6, built from the legacy route table.
func (s *server) v07Routes(legacy []*route) []*route {
	twins := make(map[string]*route, len(legacy))
	for _, rt := range legacy {
		twins[rt.id] = rt
	}
	// alias copies the legacy twin under the v0.7 method and path. A
	// missing twin yields a route without types, which fails New (the
	// OpenAPI document cannot describe it) rather than a request.
	alias := func(twinID, method, path string) *route {
		rt := &route{}
		twinDesc := twinID
		if t, ok := twins[twinID]; ok {
			*rt = *t
			twinDesc = t.method + " " + t.path
		}
		rt.method, rt.path, rt.tag = method, path, tagV07
		rt.missingIs400 = false // §6 item 2: not found is 404
		rt.id = "v07_" + strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "_")
		rt.summary += " (v0.7 alias of " + twinDesc + ")"
		return rt
	}
	// inBody turns a tenant-query twin into a body-tenant alias (§6 item 1).
	inBody := func(rt *route, reqType reflect.Type, body bodyMode, handle func(*call) (any, error)) *route {
		rt.tenant, rt.params, rt.body, rt.reqType, rt.handle = tenantNone, nil, body, reqType, handle
		return rt
	}
	withParams := func(rt *route, params ...param) *route {
		rt.params = append(append([]param(nil), rt.params...), params...)
		return rt
	}
	typeSuspend := reflect.TypeFor[V07SuspendRequest]()
	typeTenantID := reflect.TypeFor[V07TenantIDRequest]()
	qMessageID := param{name: "message_id", kind: paramString, required: true, doc: "the client's message id"}
	qAccountID := param{name: "account_id", kind: paramString, required: true}

	r := []*route{}
	add := func(rts ...*route) { r = append(r, rts...) }

	// Instance.
	add(alias("health", http.MethodGet, "/instance/health"),
		alias("status", http.MethodGet, "/instance/status"),
		alias("getInstance", http.MethodGet, "/instance/get"),
		alias("syncStatus", http.MethodGet, "/instance/get_sync_status"))
	runNow := alias("runNow", http.MethodPost, "/instance/run_now")
	add(inBody(runNow, reflect.TypeFor[V07TenantRequest](), bodyOptional, s.v07RunNow))
	suspend := func(path string) *route {
		rt := inBody(alias("suspend", http.MethodPost, path), typeSuspend, bodyOptional, s.v07Suspend)
		rt.errors = []int{404}
		return rt
	}
	activate := func(path string) *route {
		rt := inBody(alias("activate", http.MethodPost, path), typeSuspend, bodyOptional, s.v07Activate)
		rt.errors = []int{400, 404}
		return rt
	}
	add(suspend("/instance/suspend"), activate("/instance/activate"),
		alias("updateInstance", http.MethodPost, "/instance/update"),
		alias("upgradeToEE", http.MethodPost, "/instance/upgrade_to_ee"))

	// Messages.
	addBatch := alias("addMessages", http.MethodPost, "/messages/add_batch")
	addBatch.errors = without(addBatch.errors, http.StatusBadRequest) // its 400 schema is documented under the legacy id only
	addOne := alias("addMessages", http.MethodPost, "/messages/add")
	addOne.headers, addOne.reqType, addOne.respType = nil, reflect.TypeFor[MessageItem](), reflect.TypeFor[V07MessageAdded]()
	addOne.errors, addOne.handle = []int{413, 503}, s.v07AddMessage
	add(addBatch, addOne,
		inBody(alias("deleteMessages", http.MethodPost, "/messages/delete_batch"),
			reflect.TypeFor[V07DeleteBatchRequest](), bodyOptional, s.v07DeleteMessages))
	get := alias("listMessages", http.MethodGet, "/messages/get")
	get.params = []param{qTenant, qMessageID, {name: "include_history", kind: paramBool, def: false, doc: "add the message's events"}}
	get.respType, get.errors, get.handle = reflect.TypeFor[MessageRecord](), []int{404}, s.v07GetMessage
	list := alias("listMessages", http.MethodGet, "/messages/list")
	list.respType, list.handle = reflect.TypeFor[[]MessageRecord](), s.v07ListMessages
	list.params = []param{qTenant, qActiveOnly, {name: "include_history", kind: paramBool, def: false, doc: "add each message's events"},
		{name: "limit", kind: paramInt, min: &zero, doc: "at most this many (default all)"},
		{name: "offset", kind: paramInt, min: &zero, def: 0}} // v0.7 semantics: limit and offset honoured
	cleanup := alias("cleanupMessages", http.MethodGet, "/messages/cleanup")
	cleanup.body, cleanup.reqType, cleanup.errors = bodyNone, nil, nil
	cleanup = withParams(cleanup, param{name: "older_than_seconds", kind: paramInt, min: &zero, def: v07CleanupDefault,
		doc: "delete processed, reported messages last reported before now minus this"})
	cleanup.handle = s.v07Cleanup
	countActive := alias("stats", http.MethodGet, "/messages/count_active")
	countActive.params, countActive.respType, countActive.handle = nil, reflect.TypeFor[int](), s.v07CountActive
	countActive.summary = "Unprocessed messages: all tenants with the admin token, the key's own tenant otherwise" +
		" (v0.7; scoped like GET /stats)"
	countPending := alias("listMessages", http.MethodGet, "/messages/count_pending_for_tenant")
	countPending.params = []param{qTenant, qBatchCode}
	countPending.respType, countPending.handle = reflect.TypeFor[int](), s.v07CountPending
	countPending.summary = "A tenant's unprocessed messages, of one batch if given (v0.7; scoped like GET /messages)"
	add(get, list, cleanup, countActive, countPending)

	// Accounts.
	delAccount := alias("deleteAccount", http.MethodPost, "/accounts/delete")
	delAccount.errors = []int{404}
	getAccount := alias("listAccounts", http.MethodGet, "/accounts/get")
	getAccount.params = []param{qTenant, qAccountID}
	getAccount.respType, getAccount.errors, getAccount.handle = reflect.TypeFor[AccountInfo](), []int{404}, s.v07GetAccount
	add(alias("addAccount", http.MethodPost, "/accounts/add"),
		inBody(delAccount, reflect.TypeFor[V07AccountRequest](), bodyRequired, s.v07DeleteAccount),
		getAccount,
		alias("listAccounts", http.MethodGet, "/accounts/list"))

	// Tenants.
	getTenant := alias("getTenant", http.MethodGet, "/tenants/get")
	getTenant.tenant, getTenant.params = tenantQuery, []param{qTenant}
	suspended := alias("getTenant", http.MethodGet, "/tenants/get_suspended_batches")
	suspended.tenant, suspended.params = tenantQuery, []param{qTenant}
	suspended.respType, suspended.handle = reflect.TypeFor[V07SuspendedBatches](), s.v07SuspendedBatches
	suspended.summary = "A tenant's suspended batches (v0.7; scoped like GET /tenant/{tenant_id})"
	add(alias("addTenant", http.MethodPost, "/tenants/add"),
		inBody(alias("updateTenant", http.MethodPost, "/tenants/update"),
			reflect.TypeFor[V07TenantUpdateRequest](), bodyOptional, s.v07InBody(s.updateTenant)),
		inBody(alias("deleteTenant", http.MethodPost, "/tenants/delete"), typeTenantID, bodyRequired, s.v07InBody(s.deleteTenant)),
		suspend("/tenants/suspend_batch"), activate("/tenants/activate_batch"),
		inBody(alias("createApiKey", http.MethodPost, "/tenants/create_api_key"),
			reflect.TypeFor[V07APIKeyRequest](), bodyRequired, s.v07InBody(s.createAPIKey)),
		inBody(alias("revokeApiKey", http.MethodPost, "/tenants/revoke_api_key"), typeTenantID, bodyRequired, s.v07InBody(s.revokeAPIKey)),
		getTenant,
		alias("listTenants", http.MethodGet, "/tenants/list"),
		suspended)

	// Command log.
	add(alias("listCommandLog", http.MethodGet, "/command_log/list"),
		alias("exportCommandLog", http.MethodGet, "/command_log/export"))
	return r
}

// without returns list minus one value (a copy: the twin keeps its list).
func without(list []int, v int) []int {
	out := make([]int, 0, len(list))
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// v07BodyTenant reads the body and resolves its tenant_id as the legacy
// routes resolve the tenant_id query (§6 item 1): an empty string counts as
// absent, absent is 422 with the admin token and the key's tenant otherwise,
// and a key naming another tenant is 401. It returns the body's members.
func v07BodyTenant(c *call) (map[string]json.RawMessage, error) {
	top, aerr := parseJSONBody(c.body, c.rt.body != bodyRequired)
	if aerr != nil {
		return nil, aerr
	}
	var is issues
	f := newFields(top, []any{"body"}, &is)
	t, ok := f.str("tenant_id", false)
	switch {
	case !is.empty():
		return nil, invalid(is.list)
	case ok && t != "":
		c.tenantID = t
	case c.p.Admin:
		f.missingField("tenant_id")
		return nil, invalid(is.list)
	default:
		c.tenantID = c.p.TenantID
	}
	if err := c.p.CheckTenant(c.tenantID); err != nil {
		return nil, err
	}
	return top, nil
}

// v07InBody runs a legacy handler whose tenant now comes from the body.
func (s *server) v07InBody(legacy func(*call) (any, error)) func(*call) (any, error) {
	return func(c *call) (any, error) {
		if _, err := v07BodyTenant(c); err != nil {
			return nil, err
		}
		return legacy(c)
	}
}

// v07RunNow is POST /instance/run_now {"tenant_id"?}: run-now with the
// tenant in the body.
func (s *server) v07RunNow(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, true)
	if aerr != nil {
		return nil, aerr
	}
	var is issues
	tenant, _ := newFields(top, []any{"body"}, &is).str("tenant_id", false)
	if !is.empty() {
		return nil, invalid(is.list)
	}
	return okResponse, s.runNowFor(c.p, tenant)
}

// v07SuspendArgs resolves the tenant and reads the optional batch_code.
func v07SuspendArgs(c *call) (*string, error) {
	top, err := v07BodyTenant(c)
	if err != nil {
		return nil, err
	}
	var is issues
	bc, ok := newFields(top, []any{"body"}, &is).str("batch_code", false)
	if !is.empty() {
		return nil, invalid(is.list)
	}
	if !ok {
		return nil, nil
	}
	return &bc, nil
}

func (s *server) v07Suspend(c *call) (any, error) {
	bc, err := v07SuspendArgs(c)
	if err != nil {
		return nil, err
	}
	return s.suspendTenant(c.ctx(), c.tenantID, bc)
}

// v07Activate answers 404 for an unknown tenant and 400 for a single batch
// under a full suspension (the legacy activate answers 400 for both).
func (s *server) v07Activate(c *call) (any, error) {
	bc, err := v07SuspendArgs(c)
	if err != nil {
		return nil, err
	}
	return s.activateTenant(c.ctx(), c.tenantID, bc)
}

func (s *server) v07DeleteMessages(c *call) (any, error) {
	if _, err := v07BodyTenant(c); err != nil {
		return nil, err
	}
	return s.deleteMessages(c)
}

func (s *server) v07DeleteAccount(c *call) (any, error) {
	top, err := v07BodyTenant(c)
	if err != nil {
		return nil, err
	}
	var is issues
	f := newFields(top, []any{"body"}, &is)
	id, ok := f.str("account_id", true)
	if ok {
		f.strLen("account_id", id, 1, 0)
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	if err := s.removeAccount(c.ctx(), c.tenantID, id); err != nil {
		return nil, err
	}
	return okResponse, nil
}

// v07AddMessage is POST /messages/add: one message, the fields of an
// add-messages item at the top level, answered {"id","pk"}. It follows
// add-messages' rules for one item (schema 422, another tenant's id 401,
// per-item reasons, storing a rejected item as errored) through the same
// enqueueItems core, which also reports the pk. As in add-messages,
// "already sent" and "sending in progress" are successes (the stored
// message's pk is returned); any other rejection is add-messages' 400
// {"detail":{"error":null,"rejected":[…]}}. No Idempotency-Key here.
func (s *server) v07AddMessage(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, false)
	if aerr != nil {
		return nil, aerr
	}
	c.logPayload = c.body
	var is issues
	it := parseMessage(top, []any{"body"}, &is)
	if !c.p.Admin {
		c.tenantID = c.p.TenantID
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	results, _, err := s.enqueueItems(c, []item{it}, nil)
	if err != nil {
		return nil, err
	}
	if r := results[0]; r.reason == "" || r.duplicate() {
		return V07MessageAdded{ID: it.id, PK: r.pk}, nil
	}
	var id *string
	if strings.TrimSpace(it.id) != "" {
		id = &it.id
	}
	return nil, newError(http.StatusBadRequest, AddMessagesError{Rejected: []RejectedItem{{ID: id, Reason: results[0].reason}}})
}

// v07GetMessage is GET /messages/get: one record as GET /messages lists it.
func (s *server) v07GetMessage(c *call) (any, error) {
	id, _ := c.qString("message_id")
	r, err := s.st.GetMessage(c.ctx(), c.tenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(fmt.Sprintf("Message '%s' not found", id))
	}
	if err != nil {
		return nil, err
	}
	return messageRecord(&r, c.qBool("include_history"), s.now()), nil
}

// v07ListMessages is GET /messages/list: GET /messages' records, bare.
func (s *server) v07ListMessages(c *call) (any, error) {
	mr, err := s.listMessagesLimited(c)
	if err != nil {
		return nil, err
	}
	return mr.Messages, nil
}

// v07Cleanup is GET /messages/cleanup (a GET in v0.7 too, so its age is a
// query parameter): cleanup-messages with v0.7's default of 86400 s, the
// legacy answer, and the legacy command-log entry.
func (s *server) v07Cleanup(c *call) (any, error) {
	older := int64(v07CleanupDefault)
	if n, ok := c.qInt("older_than_seconds"); ok {
		older = min(n, math.MaxInt64/int64(time.Second))
	}
	n, err := s.st.CleanupMessages(c.ctx(), c.tenantID, s.now().Add(-time.Duration(older)*time.Second), 0)
	if err != nil {
		return nil, err
	}
	s.refreshPending()
	return CleanupResponse{OK: true, Removed: n}, nil
}

// v07CountActive is GET /messages/count_active: unprocessed messages of
// every tenant for the admin token, of its own tenant for a key (the
// scoping of GET /stats).
func (s *server) v07CountActive(c *call) (any, error) {
	if c.p.Admin {
		return s.st.CountUnprocessed(c.ctx())
	}
	c.tenantID = c.p.TenantID
	return s.countUnprocessed(c, nil)
}

// v07CountPending is GET /messages/count_pending_for_tenant.
func (s *server) v07CountPending(c *call) (any, error) {
	if bc, ok := c.qString("batch_code"); ok {
		return s.countUnprocessed(c, &bc)
	}
	return s.countUnprocessed(c, nil)
}

// countUnprocessed counts c.tenantID's unprocessed messages (pending or
// deferred, as suspend's pending_messages), of one batch if given.
func (s *server) countUnprocessed(c *call, batch *string) (int, error) {
	now := s.now()
	if batch == nil {
		st, err := s.st.Stats(c.ctx(), c.tenantID, now)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, t := range st {
			if t.TenantID == c.tenantID {
				n += t.Pending + t.Deferred
			}
		}
		return n, nil
	}
	return s.st.CountBatchPending(c.ctx(), c.tenantID, *batch)
}

// v07GetAccount is GET /accounts/get: one account as GET /accounts lists it.
func (s *server) v07GetAccount(c *call) (any, error) {
	id, _ := c.qString("account_id")
	return s.accountInfo(c.ctx(), c.tenantID, id)
}

// v07SuspendedBatches is GET /tenants/get_suspended_batches.
func (s *server) v07SuspendedBatches(c *call) (any, error) {
	t, err := s.st.GetTenant(c.ctx(), c.tenantID)
	if isTenantMissing(err) {
		return nil, tenantNotFound(c.tenantID)
	}
	if err != nil {
		return nil, err
	}
	return V07SuspendedBatches{OK: true, TenantID: t.ID, SuspendedBatches: tenantInfo(t).SuspendedBatches}, nil
}
