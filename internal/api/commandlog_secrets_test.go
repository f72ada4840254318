package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mailproxy/mailproxy/internal/api"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store/postgres"
	"github.com/mailproxy/mailproxy/internal/store/postgres/pgtest"
)

const logSecret = "smtp-pass-typo-4e7b"

// secretCalls make the calls whose secrets must not reach the command log:
// a body that is not JSON, and a 422 whose input echo holds the password.
func secretCalls(t *testing.T, e *env) {
	t.Helper()
	r := e.must(422, "POST", "/account", adminToken,
		`{"id":"smtp","tenant_id":"acme","host":"h","port":25,"password":"`+logSecret+`"`)
	if r.Issues(t)[0]["type"] != "json_invalid" {
		t.Fatalf("malformed body: %s", r.Body)
	}
	e.must(422, "POST", "/account", adminToken,
		map[string]any{"id": "smtp", "tenant_id": "acme", "host": "h", "port": 25, "password": []any{logSecret}})
	e.must(422, "POST", "/tenant", adminToken,
		map[string]any{"id": "acme", "client_auth": map[string]any{"method": "bearer", "token": []any{logSecret}}})
}

// checkCommandLog reads the log through the API: the calls are there (so
// the scan below is meaningful), named by size and hash, without the secret.
func checkCommandLog(t *testing.T, e *env) {
	t.Helper()
	r := e.must(200, "GET", "/command-log", adminToken, nil)
	if strings.Contains(string(r.Body), logSecret) {
		t.Fatalf("command log shows the secret: %s", r.Body)
	}
	var b struct {
		Commands []struct {
			Endpoint string         `json:"endpoint"`
			Caller   string         `json:"caller"`
			Payload  map[string]any `json:"payload"`
		} `json:"commands"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatal(err)
	}
	var malformed map[string]any
	for _, c := range b.Commands {
		if c.Endpoint == "addAccount" && c.Payload["body_sha256"] != nil {
			malformed = c.Payload
		}
	}
	if malformed == nil || len(malformed) != 2 || malformed["body_size"] == nil {
		t.Fatalf("malformed POST /account logged as %v, want only body_size and body_sha256: %s", malformed, r.Body)
	}
}

// A typo'd POST /account leaves no trace of its password in the SQLite
// file, nor does a 422 that echoes it.
func TestCommandLogKeepsNoSecretOfMalformedBodiesSQLite(t *testing.T) {
	e := setup(t)
	e.tenant("acme")
	secretCalls(t, e)
	checkCommandLog(t, e)
	files, _ := filepath.Glob(e.dbPath + "*")
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(logSecret)) {
			t.Errorf("%s holds the secret", filepath.Base(f))
		}
	}
}

// The same on PostgreSQL: every row of command_log as text.
func TestCommandLogKeepsNoSecretOfMalformedBodiesPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	st, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h, err := api.New(api.Deps{Store: st, Metrics: metrics.New(), Options: testOptions(), AdminToken: adminToken,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, client: srv.Client()}
	e.tenant("acme")
	secretCalls(t, e)
	checkCommandLog(t, e)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows string
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(c::text, E'\n'), '') FROM command_log c`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rows, "addAccount") {
		t.Fatalf("command_log holds no addAccount row: %s", rows)
	}
	if strings.Contains(rows, logSecret) {
		t.Errorf("command_log holds the secret: %s", rows)
	}
}

// Each entry names who called apart from whom it targeted; refused calls
// of a valid key are recorded and name it.
func TestCommandLogNamesTheCaller(t *testing.T) {
	e := setup(t)
	key := e.tenant("acme")
	e.tenant("other")
	e.must(200, "POST", "/commands/suspend?tenant_id=acme", key, nil)
	e.must(401, "POST", "/commands/suspend?tenant_id=other", key, nil)
	e.must(403, "POST", "/tenant", key, map[string]any{"id": "mine"})
	e.must(200, "POST", "/commands/suspend?tenant_id=other", adminToken, nil)
	e.must(401, "POST", "/commands/suspend?tenant_id=other", "not-a-token", nil) // no valid token: not recorded
	r := e.must(200, "GET", "/command-log?limit=4", adminToken, nil)
	var b struct {
		Commands []struct {
			Endpoint       string  `json:"endpoint"`
			Caller         string  `json:"caller"`
			TenantID       *string `json:"tenant_id"`
			ResponseStatus int     `json:"response_status"`
		} `json:"commands"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatal(err)
	}
	type row struct {
		endpoint, caller, tenant string
		status                   int
	}
	var got []row
	for _, c := range b.Commands {
		tenant := ""
		if c.TenantID != nil {
			tenant = *c.TenantID
		}
		got = append(got, row{c.Endpoint, c.Caller, tenant, c.ResponseStatus})
	}
	want := []row{
		{"suspend", "admin", "other", 200},
		{"addTenant", "tenant:acme", "", 403},
		{"suspend", "tenant:acme", "other", 401},
		{"suspend", "tenant:acme", "acme", 200},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// A large add-messages is logged as a bounded summary, not copied whole.
func TestCommandLogBoundsLargeBodies(t *testing.T) {
	e := setup(t, func(d *apiDeps, _ *sqliteOptions) { d.Options.MaxRequestBytes = 8 << 20 })
	key := e.tenant("acme")
	e.account("acme", "smtp")
	m := msg("big", "", "smtp")
	m["body"] = strings.Repeat("lorem ipsum ", 300_000) // 3.6 MB
	e.must(200, "POST", "/commands/add-messages", key, batch(m))
	r := e.must(200, "GET", "/command-log?endpoint_filter=addMessages", adminToken, nil)
	if len(r.Body) > 32<<10 {
		t.Fatalf("command-log answer of %d bytes for one add-messages, want a bounded summary", len(r.Body))
	}
	var b struct {
		Commands []struct {
			Payload map[string]any `json:"payload"`
		} `json:"commands"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || len(b.Commands) != 1 {
		t.Fatalf("%v: %s", err, r.Body)
	}
	p := b.Commands[0].Payload
	summary, _ := p["body_summary"].(map[string]any)
	if p["body_size"].(float64) < 3_600_000 || len(p["body_sha256"].(string)) != 64 || summary == nil {
		t.Fatalf("payload %v, want body_size, body_sha256 and body_summary", p)
	}
	if id := summary["messages"].([]any)[0].(map[string]any)["id"]; id != "big" {
		t.Fatalf("summary %v, want the message id kept", summary)
	}
}
