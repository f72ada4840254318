package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/store"
)

const tagSuppressions = "suppressions"

// maxSuppressionsPerRequest bounds POST /suppressions.
const maxSuppressionsPerRequest = 10000

// SuppressionInfo is one suppressed address as listed.
type SuppressionInfo struct {
	Address   string `json:"address" doc:"lower-cased; compared case-insensitively"`
	Reason    string `json:"reason"`
	Source    string `json:"source" enum:"bounce,complaint,manual"`
	CreatedAt string `json:"created_at" doc:"RFC 3339"`
}

// SuppressionsResponse is GET /suppressions' answer.
type SuppressionsResponse struct {
	OK           bool              `json:"ok"`
	Suppressions []SuppressionInfo `json:"suppressions" nullable:"false"`
}

// AddSuppressionsRequest is POST /suppressions' body.
type AddSuppressionsRequest struct {
	TenantID  *string  `json:"tenant_id,omitempty" doc:"omitted: the key's tenant, or default with the admin token"`
	Addresses []string `json:"addresses" maxItems:"10000" doc:"addresses to suppress (display names allowed)"`
	Reason    string   `json:"reason,omitempty"`
}

// AddSuppressionsResponse is POST /suppressions' answer.
type AddSuppressionsResponse struct {
	OK    bool `json:"ok"`
	Added int  `json:"added" doc:"addresses not suppressed before"`
}

// RemoveSuppressionResponse is DELETE /suppressions' answer.
type RemoveSuppressionResponse struct {
	OK      bool `json:"ok"`
	Removed int  `json:"removed"`
}

func (s *server) suppressionRoutes() []*route {
	qAddress := param{name: "address", kind: paramString, required: true, doc: "the address to remove (any case)"}
	return []*route{
		{method: http.MethodGet, path: "/suppressions", id: "listSuppressions", summary: "List a tenant's suppressed addresses", tag: tagSuppressions,
			class: auth.Tenant, tenant: tenantQuery, params: []param{qTenant},
			respType: reflect.TypeFor[SuppressionsResponse](), handle: s.listSuppressions},
		{method: http.MethodPost, path: "/suppressions", id: "addSuppressions", summary: "Suppress addresses for a tenant", tag: tagSuppressions,
			class: auth.Tenant, command: cmdAddSuppressions, body: bodyRequired,
			reqType: reflect.TypeFor[AddSuppressionsRequest](), respType: reflect.TypeFor[AddSuppressionsResponse](),
			errors: []int{404, 413}, handle: s.addSuppressions},
		{method: http.MethodDelete, path: "/suppressions", id: "removeSuppression", summary: "Remove an address from a tenant's suppression list", tag: tagSuppressions,
			class: auth.Tenant, tenant: tenantQuery, command: cmdRemoveSuppression, params: []param{qTenant, qAddress},
			respType: reflect.TypeFor[RemoveSuppressionResponse](), handle: s.removeSuppression},
	}
}

func (s *server) listSuppressions(c *call) (any, error) {
	list, err := s.st.ListSuppressions(c.ctx(), c.tenantID)
	if err != nil {
		return nil, err
	}
	out := SuppressionsResponse{OK: true, Suppressions: make([]SuppressionInfo, len(list))}
	for i, e := range list {
		out.Suppressions[i] = SuppressionInfo{Address: e.Address, Reason: e.Reason, Source: e.Source, CreatedAt: rfc3339(e.CreatedAt)}
	}
	return out, nil
}

func (s *server) addSuppressions(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, false)
	if aerr != nil {
		return nil, aerr
	}
	var is issues
	f := newFields(top, []any{"body"}, &is)
	tenant := c.p.DefaultTenant()
	if t, ok := f.str("tenant_id", false); ok {
		tenant = t
	}
	reason, _ := f.str("reason", false)
	var addrs []string
	if f.require("addresses") {
		raw := top["addresses"]
		if kindOf(raw) != kindArray {
			is.add("list_type", "Input should be a valid list", []any{"body", "addresses"}, raw, nil)
		} else {
			var items []any
			if err := json.Unmarshal(raw, &items); err != nil {
				is.add("list_type", "Input should be a valid list", []any{"body", "addresses"}, raw, nil)
			}
			if len(items) > maxSuppressionsPerRequest {
				is.valueError([]any{"body", "addresses"}, nil, "at most 10000 addresses per request")
			}
			for i, v := range items {
				str, ok := v.(string)
				if !ok {
					is.add("string_type", msgStringType, []any{"body", "addresses", i}, jsonInput(v), nil)
					continue
				}
				list := envelopeAddresses([]string{str}, nil, nil)
				if len(list) != 1 || !validAddress(list[0]) {
					is.valueError([]any{"body", "addresses", i}, jsonInput(str), "not an email address")
					continue
				}
				addrs = append(addrs, list[0])
			}
		}
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	c.tenantID = tenant
	if err := c.p.CheckTenant(tenant); err != nil {
		return nil, err
	}
	entries := make([]store.Suppression, len(addrs))
	now := s.now()
	for i, a := range addrs {
		entries[i] = store.Suppression{TenantID: tenant, Address: a, Reason: strings.TrimSpace(reason),
			Source: store.SuppressedManually, CreatedAt: now}
	}
	added, err := s.st.AddSuppressions(c.ctx(), entries)
	if errors.Is(err, store.ErrTenantNotFound) {
		return nil, tenantNotFound(tenant)
	}
	if err != nil {
		return nil, err
	}
	return AddSuppressionsResponse{OK: true, Added: added}, nil
}

func (s *server) removeSuppression(c *call) (any, error) {
	addr := strings.TrimSpace(c.r.URL.Query().Get("address"))
	if list := envelopeAddresses([]string{addr}, nil, nil); len(list) == 1 {
		addr = list[0]
	}
	n, err := s.st.RemoveSuppression(c.ctx(), c.tenantID, addr)
	if err != nil {
		return nil, err
	}
	return RemoveSuppressionResponse{OK: true, Removed: n}, nil
}
