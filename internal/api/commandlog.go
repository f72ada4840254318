package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Command-log names (tenancy-security.md §5).
const (
	cmdAddMessages         = "addMessages"
	cmdDeleteMessages      = "deleteMessages"
	cmdCleanupMessages     = "cleanupMessages"
	cmdAddAccount          = "addAccount"
	cmdDeleteAccount       = "deleteAccount"
	cmdAddTenant           = "addTenant"
	cmdUpdateTenant        = "updateTenant"
	cmdDeleteTenant        = "deleteTenant"
	cmdSuspend             = "suspend"
	cmdActivate            = "activate"
	cmdRetryDeferred       = "retryDeferred"
	cmdAddSuppressions     = "addSuppressions"
	cmdRemoveSuppression   = "removeSuppression"
	cmdCreateAPIKey        = "createApiKey"
	cmdRevokeAPIKey        = "revokeApiKey"
	cmdCreateSigningSecret = "createSigningSecret"
	cmdRevokeSigningSecret = "revokeSigningSecret"
	cmdUpdateInstance      = "updateInstance"
)

// redacted replaces every secret in the command log.
const redacted = "***"

// secretKeys are redacted wherever they appear; "token" only inside an
// auth object (client_auth, an attachment's auth).
var secretKeys = map[string]bool{
	"password": true, "imap_password": true, "bounce_imap_password": true,
	"api_token": true, "api_key": true, "signing_secret": true, "dkim_private_key": true,
}

// record appends the call to the command log when its route is a command and
// the caller presented a valid token, refused calls (403, another tenant's
// 401) included; calls without a valid token are not recorded, so they
// cannot fill the log. Caller (who called) is kept apart from tenant_id
// (whom the call targeted). A failure to record is logged, not answered.
func (s *server) record(c *call, status int, body []byte) {
	if c.rt.command == "" || c.noLog || !c.p.Authenticated() {
		return
	}
	var payload json.RawMessage
	if c.logPayload != nil {
		payload = boundedLog(c.logPayload)
	} else {
		payload = c.defaultLogPayload()
	}
	e := store.CommandLogEntry{
		At:             s.now(),
		Endpoint:       c.rt.command,
		Caller:         c.p.Scope(),
		Payload:        redactJSON(payload),
		ResponseStatus: status,
		ResponseBody:   redactJSON(logResponse(status, body)),
	}
	switch {
	case c.logTenant != nil:
		e.TenantID = c.logTenant
	case c.tenantID != "":
		e.TenantID = &c.tenantID
	}
	// The command ran: record it even if the client has gone.
	if err := s.st.AppendCommand(context.WithoutCancel(c.ctx()), e); err != nil {
		if f := store.FaultOf(err); f != store.FaultNone {
			s.storeHealth.failed(f, err)
			return
		}
		s.log.Warn("append command log", "command", c.rt.command, "error", err)
	}
}

// defaultLogPayload is the call's query, path and body parameters as one
// JSON object.
func (c *call) defaultLogPayload() json.RawMessage {
	m := map[string]any{}
	whole, facts := logBody(c.body)
	var obj map[string]json.RawMessage
	switch {
	case facts != nil: // not JSON, or large: never the body itself
		for k, v := range facts {
			m[k] = v
		}
	case whole == nil:
	case json.Unmarshal(whole, &obj) == nil:
		for k, v := range obj {
			m[k] = v
		}
	default:
		m["body"] = whole
	}
	for _, p := range c.rt.params {
		if v, ok := c.query[p.name]; ok {
			switch p.kind {
			case paramInt:
				m[p.name] = v.i
			case paramBool:
				m[p.name] = v.b
			default:
				m[p.name] = v.s
			}
		}
	}
	for _, name := range pathParams(c.rt.path) {
		m[name] = c.r.PathValue(name)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}

// logResponse is what the command log keeps of an answer: bounded like a
// request body, and without the 422 entries' input echo, which repeats
// what the client sent (a password included) and is logged, redacted,
// with the request already.
func logResponse(status int, body []byte) json.RawMessage {
	if status == http.StatusUnprocessableEntity && bytes.Contains(body, []byte(`"input"`)) {
		var b struct {
			Detail []map[string]json.RawMessage `json:"detail"`
		}
		if json.Unmarshal(body, &b) != nil {
			return boundedLog(body)
		}
		for _, is := range b.Detail {
			delete(is, "input")
		}
		if out, err := json.Marshal(b); err == nil {
			body = out
		}
	}
	return boundedLog(body)
}

// pathParams lists the {names} of a route pattern.
func pathParams(path string) []string {
	var out []string
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, path[i+1:i+j])
		path = path[i+j:]
	}
}

// redactJSON replaces secret values with "***". JSON without any secret key
// name is returned as is (the common case, and add-messages' hot path).
func redactJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || !(bytes.Contains(raw, []byte("password")) || bytes.Contains(raw, []byte("token")) ||
		bytes.Contains(raw, []byte("api_key")) || bytes.Contains(raw, []byte("signing_secret")) ||
		bytes.Contains(raw, []byte("private_key"))) {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	v = redactValue(v, false)
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}

func redactValue(v any, inAuth bool) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if val != nil && (secretKeys[k] || (inAuth && k == "token")) {
				t[k] = redacted
				continue
			}
			t[k] = redactValue(val, k == "client_auth" || k == "auth")
		}
	case []any:
		for i := range t {
			t[i] = redactValue(t[i], false)
		}
	}
	return v
}

// CommandEntry is one command-log row as listed by GET /command-log.
type CommandEntry struct {
	ID             int64           `json:"id"`
	CommandTS      int64           `json:"command_ts" doc:"Unix seconds"`
	Endpoint       string          `json:"endpoint" doc:"command name, e.g. addMessages"`
	TenantID       *string         `json:"tenant_id,omitempty" doc:"the tenant the call targeted"`
	Caller         string          `json:"caller,omitempty" doc:"who called: admin or tenant:<id> of the key (ours)"`
	Payload        json.RawMessage `json:"payload,omitempty" doc:"query and body parameters, secrets as ***; a body that is not JSON as body_size and body_sha256 only; one over 64 KiB as those and a body_summary"`
	ResponseStatus int             `json:"response_status"`
}

// CommandLogResponse is GET /command-log's answer.
type CommandLogResponse struct {
	OK       bool           `json:"ok"`
	Commands []CommandEntry `json:"commands" nullable:"false"`
	Total    int            `json:"total"`
}

// CommandExportEntry is one row of GET /command-log/export.
type CommandExportEntry struct {
	Endpoint  string          `json:"endpoint"`
	TenantID  *string         `json:"tenant_id,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	CommandTS int64           `json:"command_ts"`
}

// CommandExportResponse is GET /command-log/export's answer.
type CommandExportResponse struct {
	OK       bool                 `json:"ok"`
	Commands []CommandExportEntry `json:"commands" nullable:"false"`
}

func (s *server) commandFilter(c *call) store.CommandLogFilter {
	f := store.CommandLogFilter{Since: c.qTime("since_ts"), Until: c.qTime("until_ts")}
	f.TenantID, _ = c.qString("tenant_id")
	return f
}

func (s *server) listCommands(c *call) (any, error) {
	f := s.commandFilter(c)
	f.EndpointFilter, _ = c.qString("endpoint_filter")
	f.Limit = 100
	if n, ok := c.qInt("limit"); ok {
		f.Limit = int(n)
	}
	entries, err := s.st.ListCommands(c.ctx(), f)
	if err != nil {
		return nil, err
	}
	out := CommandLogResponse{OK: true, Commands: make([]CommandEntry, 0, len(entries))}
	for _, e := range entries {
		out.Commands = append(out.Commands, CommandEntry{ID: e.ID, CommandTS: unixSeconds(e.At),
			Endpoint: e.Endpoint, TenantID: e.TenantID, Caller: e.Caller, Payload: nonNullJSON(e.Payload), ResponseStatus: e.ResponseStatus})
	}
	out.Total = len(out.Commands)
	return out, nil
}

func (s *server) exportCommands(c *call) (any, error) {
	f := s.commandFilter(c)
	f.OldestFirst = true
	entries, err := s.st.ListCommands(c.ctx(), f)
	if err != nil {
		return nil, err
	}
	out := CommandExportResponse{OK: true, Commands: make([]CommandExportEntry, 0, len(entries))}
	for _, e := range entries {
		out.Commands = append(out.Commands, CommandExportEntry{Endpoint: e.Endpoint, TenantID: e.TenantID,
			Payload: nonNullJSON(e.Payload), CommandTS: unixSeconds(e.At)})
	}
	return out, nil
}

// nonNullJSON maps a JSON null to nil so that omitempty drops it.
func nonNullJSON(raw json.RawMessage) json.RawMessage {
	if kindOf(raw) == kindNull {
		return nil
	}
	return raw
}

// unixSeconds is the wire's time format.
func unixSeconds(t time.Time) int64 { return t.Unix() }

// unixPtr converts an optional time.
func unixPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	n := t.Unix()
	return &n
}

// rfc3339 is the wire's created_at/updated_at format.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
