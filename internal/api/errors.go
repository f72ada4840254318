package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Detail strings of the contract (api.md §1, §2).
const (
	detailInvalidToken   = "Invalid or missing API token"
	detailAdminRequired  = "Admin token required"
	detailAdminOnly      = "Admin token required, tenant tokens not allowed for this operation"
	detailWrongTenant    = "Token not authorized for this tenant"
	detailTooLarge       = "Request body too large"
	detailOverloaded     = "Service overloaded, retry later"
	detailNotFound       = "Not Found"
	detailMethod         = "Method Not Allowed"
	detailInternal       = "Internal server error"
	detailTenantNotFound = "tenant not found"
)

// Domain errors of the core operations, beside the store's sentinels
// (store.ErrFullySuspended, store.ErrOverloaded). toAPIError gives each its
// status and detail.
var (
	// errTenantMissing: the tenant the operation acts on does not exist.
	errTenantMissing = fmt.Errorf("tenant: %w", store.ErrNotFound)
	// errAccountMissing: no such account of the tenant.
	errAccountMissing = fmt.Errorf("account: %w", store.ErrNotFound)
	// errActivateRefused: the legacy activate's one refusal for an unknown
	// tenant and a batch under a full suspension.
	errActivateRefused = errors.New("activate refused")
)

// apiError is an answer other than 200: a status and the value of the
// body's "detail" key (a string, an object or a list of issues).
type apiError struct {
	status int
	detail any
	header http.Header
	cause  error // logged for 500s, never sent
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("HTTP %d: %v", e.status, e.cause)
	}
	return fmt.Sprintf("HTTP %d: %v", e.status, e.detail)
}

func (e *apiError) Unwrap() error { return e.cause }

// errorBody is every error's JSON shape.
type errorBody struct {
	Detail any `json:"detail"`
}

func newError(status int, detail any) *apiError { return &apiError{status: status, detail: detail} }

func badRequest(detail string) *apiError { return newError(http.StatusBadRequest, detail) }

func notFound(detail string) *apiError { return newError(http.StatusNotFound, detail) }

func tenantNotFound(id string) *apiError {
	return notFound(fmt.Sprintf("Tenant '%s' not found", id))
}

// invalid is a 422 answer with pydantic-shaped entries.
func invalid(issues []issue) *apiError {
	return newError(http.StatusUnprocessableEntity, issues)
}

// toAPIError maps any error a handler returns to its answer: contract
// errors pass through, auth, store and domain sentinels get their status,
// anything else is a generic 500 (the cause is logged by the caller). A
// missing tenant or account is 404, or 400 where the route says so (the
// legacy commands; their v0.7 aliases answer 404, api.md §6 item 2).
func toAPIError(err error, rt *route) *apiError {
	var ae *apiError
	if errors.As(err, &ae) && ae.status < 500 {
		return ae
	}
	if f := store.FaultOf(err); f != store.FaultNone {
		return storeFaultError(f, err)
	}
	if ae != nil {
		return ae
	}
	missing := http.StatusNotFound
	if rt.missingIs400 {
		missing = http.StatusBadRequest
	}
	switch {
	case errors.Is(err, auth.ErrNoToken):
		if rt.class == auth.Admin {
			return newError(http.StatusUnauthorized, detailAdminRequired)
		}
		return newError(http.StatusUnauthorized, detailInvalidToken)
	case errors.Is(err, auth.ErrInvalidToken):
		return newError(http.StatusUnauthorized, detailInvalidToken)
	case errors.Is(err, auth.ErrAdminRequired):
		return newError(http.StatusForbidden, detailAdminOnly)
	case errors.Is(err, auth.ErrWrongTenant):
		return newError(http.StatusUnauthorized, detailWrongTenant)
	case errors.Is(err, store.ErrOverloaded):
		return &apiError{status: http.StatusServiceUnavailable, detail: detailOverloaded,
			header: http.Header{"Retry-After": {"1"}}, cause: err}
	case errors.Is(err, errActivateRefused), errors.Is(err, store.ErrFullySuspended):
		return badRequest(detailActivateFailed)
	case errors.Is(err, errTenantMissing):
		return newError(missing, detailTenantNotFound)
	case errors.Is(err, errAccountMissing):
		return newError(missing, detailAccountNotFound)
	}
	return &apiError{status: http.StatusInternalServerError, detail: detailInternal, cause: err}
}

// body is the JSON of the error answer.
func (e *apiError) body() []byte {
	b, err := json.Marshal(errorBody{Detail: e.detail})
	if err != nil {
		return []byte(`{"detail":"` + detailInternal + `"}`)
	}
	return b
}
