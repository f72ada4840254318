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
// errors pass through, auth and store sentinels get their status, anything
// else is a generic 500 (the cause is logged by the caller).
func toAPIError(err error, class auth.Class) *apiError {
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
	switch {
	case errors.Is(err, auth.ErrNoToken):
		if class == auth.Admin {
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
