package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/store"
)

// tenantSource says where a tenant route finds its tenant.
type tenantSource int

const (
	tenantNone  tenantSource = iota // not a tenant route, or the handler resolves it (body)
	tenantQuery                     // query tenant_id: required for admin, the key's own by default
	tenantPath                      // path {tenant_id}
)

// paramKind is a query parameter's type.
type paramKind int

const (
	paramString paramKind = iota
	paramInt
	paramBool
)

// param is one documented and parsed query parameter.
type param struct {
	name     string
	kind     paramKind
	required bool
	def      any // documented default
	min      *int64
	doc      string
}

// route is one endpoint: everything the wrapper, the handler and the
// OpenAPI document need.
type route struct {
	method, path string
	id           string // OpenAPI operationId
	summary      string
	tag          string
	class        auth.Class
	tenant       tenantSource
	command      string // command-log name; "" = not recorded
	params       []param
	body         bodyMode
	reqType      reflect.Type // request body schema (nil = none)
	respType     reflect.Type // 200 body schema
	errors       []int        // documented error statuses beyond the common ones
	missingIs400 bool         // a missing tenant or account is 400, not 404 (legacy commands)
	handle       func(c *call) (any, error)
	raw          http.Handler // serves the route directly (metrics)
	headers      []param      // documented request headers

	observeOK func() prometheus.Observer // made on first use: no zero series per route
}

// bodyMode says whether a route reads a request body.
type bodyMode int

const (
	bodyNone     bodyMode = iota
	bodyRequired          // JSON object, required
	bodyOptional          // JSON object; empty body = {}
)

// call is one request being served.
type call struct {
	s        *server
	r        *http.Request
	w        http.ResponseWriter
	rt       *route
	p        auth.Principal
	body     []byte
	bodySum  []byte // SHA-256 of body, when taken before body was let go
	query    map[string]queryValue
	tenantID string // the tenant the request acts on ("" = none/all)

	// logPayload replaces the default command-log payload (query + body).
	logPayload json.RawMessage
	// logTenant, when set, is the command log's tenant_id instead of tenantID.
	logTenant *string
	// noLog suppresses the command log (answers that must not be recorded).
	noLog bool
}

// queryValue is a parsed query parameter.
type queryValue struct {
	s string
	i int64
	b bool
}

// reply is an answer with a status other than 200 or extra headers, or a
// body already encoded.
type reply struct {
	status int
	header http.Header
	body   any    // marshalled unless raw is set
	raw    []byte // pre-encoded JSON
}

func (s *server) handler(rt *route) http.Handler {
	if rt.raw != nil {
		return rt.raw
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status := s.serve(&call{s: s, r: r, w: w, rt: rt})
		d := time.Since(start).Seconds()
		if status == http.StatusOK {
			rt.observeOK().Observe(d)
			return
		}
		s.d.Metrics.HTTPDuration.WithLabelValues(rt.path, rt.method, strconv.Itoa(status)).Observe(d)
	})
}

// serve runs one call and writes its answer; it returns the status.
func (s *server) serve(c *call) (status int) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.panicked(c.r, v)
			status = s.fail(c, &apiError{status: 500, detail: detailInternal, cause: fmt.Errorf("panic: %v", v)})
		}
	}()
	out, err := s.run(c)
	if err != nil {
		return s.fail(c, err)
	}
	if sr, ok := out.(*streamReply); ok {
		return s.stream(c, sr)
	}
	status, hdr, body := http.StatusOK, http.Header(nil), []byte(nil)
	if rp, ok := out.(*reply); ok {
		if rp.status != 0 {
			status = rp.status
		}
		hdr, body = rp.header, rp.raw
		out = rp.body
	}
	if body == nil {
		body, err = json.Marshal(out)
		if err != nil {
			return s.fail(c, fmt.Errorf("encode answer: %w", err))
		}
	}
	if c.r.Method != http.MethodGet {
		s.storeHealth.succeeded()
	}
	s.record(c, status, body)
	writeJSON(c.w, status, hdr, body)
	return status
}

// fail writes the error answer (logging unexpected errors) and returns its status.
func (s *server) fail(c *call, err error) int {
	ae := toAPIError(err, c.rt)
	fault := store.FaultOf(err)
	switch {
	case ae.status < 500, errors.Is(err, errBodyBudget): // backpressure is not a failure
	case fault != store.FaultNone: // logged once per change of state
		s.storeHealth.failed(fault, err)
	case c.r.Context().Err() != nil: // the client went away; nobody reads this answer
		s.log.Info("request cancelled", "method", c.r.Method, "route", c.rt.path, "error", err)
	default:
		s.log.Error("request failed", "method", c.r.Method, "route", c.rt.path,
			"status", ae.status, "error", err)
	}
	body := ae.body()
	s.record(c, ae.status, body)
	writeJSON(c.w, ae.status, ae.header, body)
	return ae.status
}

// run authenticates, reads and checks the input, and calls the handler.
func (s *server) run(c *call) (any, error) {
	rt := c.rt
	p, err := s.auth.Require(c.r.Context(), c.r, rt.class)
	c.p = p // also when refused: the command log names the caller
	if err != nil {
		return nil, err
	}
	if rt.body != bodyNone {
		var held int64
		c.body, held, err = s.readBody(c)
		defer s.bodies.sem.Release(held) // after the handler: its decoded copies are gone
		if err != nil {
			return nil, err
		}
	}
	var is issues
	if len(rt.params) > 0 {
		c.query = parseQuery(c.r, rt.params, &is)
	}
	switch rt.tenant {
	case tenantQuery:
		if q, ok := c.query["tenant_id"]; ok {
			c.tenantID = q.s
		} else if p.Admin {
			is.missing([]any{"query", "tenant_id"}, nil)
		} else {
			c.tenantID = p.TenantID
		}
	case tenantPath:
		c.tenantID = c.r.PathValue("tenant_id")
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	if rt.tenant != tenantNone && rt.class == auth.Tenant {
		if err := p.CheckTenant(c.tenantID); err != nil {
			return nil, err
		}
	}
	return rt.handle(c)
}

// readBody reads the whole body, refusing more than GMP_MAX_REQUEST_MB,
// within the body budget; it returns the bytes of budget it holds.
func (s *server) readBody(c *call) ([]byte, int64, error) {
	r := c.r
	tooLarge := newError(http.StatusRequestEntityTooLarge, detailTooLarge)
	if r.ContentLength > s.maxBody {
		return nil, 0, tooLarge
	}
	var (
		buf  bytes.Buffer
		src  io.Reader = http.MaxBytesReader(c.w, r.Body, s.maxBody)
		held int64
		br   *budgetReader
	)
	if r.ContentLength >= 0 {
		if err := s.bodies.take(c.ctx(), r.ContentLength); err != nil {
			return nil, 0, err
		}
		held = r.ContentLength
		buf.Grow(int(r.ContentLength))
	} else {
		br = &budgetReader{ctx: c.ctx(), r: src, b: s.bodies}
		src = br
	}
	_, err := buf.ReadFrom(src)
	if br != nil {
		held = br.held
	}
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, held, tooLarge
		case br != nil && br.err != nil:
			return nil, held, br.err
		case errors.Is(err, io.ErrUnexpectedEOF) || c.r.Context().Err() != nil:
			return nil, held, newError(http.StatusBadRequest, "Request body incomplete")
		}
		return nil, held, fmt.Errorf("read request body: %w", err)
	}
	return buf.Bytes(), held, nil
}

// parseQuery parses the declared query parameters. An empty value counts as
// absent. Errors use pydantic's types with loc ["query", name].
func parseQuery(r *http.Request, params []param, is *issues) map[string]queryValue {
	values := r.URL.Query()
	out := make(map[string]queryValue, len(params))
	for _, p := range params {
		v := values.Get(p.name)
		loc := []any{"query", p.name}
		if v == "" {
			if p.required {
				is.missing(loc, nil)
			}
			continue
		}
		switch p.kind {
		case paramString:
			out[p.name] = queryValue{s: v}
		case paramInt:
			n, typ := parseIntNumber(strings.TrimSpace(v), true)
			switch {
			case typ == "int_parsing_size":
				is.add(typ, msgIntSize, loc, jsonInput(v), nil)
			case typ != "":
				is.add("int_parsing", msgIntParsing, loc, jsonInput(v), nil)
			case p.min != nil && n < *p.min:
				is.add("greater_than_equal", fmt.Sprintf("Input should be greater than or equal to %d", *p.min),
					loc, jsonInput(v), map[string]any{"ge": *p.min})
			default:
				out[p.name] = queryValue{s: v, i: n}
			}
		case paramBool:
			b, ok := parseBoolText(v)
			if !ok {
				is.add("bool_parsing", msgBoolParsing, loc, jsonInput(v), nil)
				continue
			}
			out[p.name] = queryValue{s: v, b: b}
		}
	}
	return out
}

// Query accessors for handlers.

func (c *call) qString(name string) (string, bool) {
	v, ok := c.query[name]
	return v.s, ok
}

func (c *call) qInt(name string) (int64, bool) {
	v, ok := c.query[name]
	return v.i, ok
}

func (c *call) qBool(name string) bool { return c.query[name].b }

// qTime reads a Unix-seconds query parameter.
func (c *call) qTime(name string) *time.Time {
	n, ok := c.qInt(name)
	if !ok {
		return nil
	}
	t := time.Unix(n, 0)
	return &t
}

// ctx is the request's context.
func (c *call) ctx() context.Context { return c.r.Context() }
