package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailproxy/mailproxy/internal/dkim"
)

func TestDKIMKeygen(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, "dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--type", kind)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			end := strings.Index(r.stdout, "-----END PRIVATE KEY-----")
			if end < 0 {
				t.Fatalf("no PEM block: %s", r.stdout)
			}
			key, err := dkim.ParsePrivateKey(r.stdout[:end+len("-----END PRIVATE KEY-----")])
			if err != nil {
				t.Fatalf("printed key does not parse: %v", err)
			}
			record, _ := dkim.PublicRecord(key)
			if !strings.Contains(r.stdout, dkim.ZoneRecord("example.com", "s1", record)) {
				t.Errorf("no TXT record for the printed key:\n%s", r.stdout)
			}

			r = run(t, nil, "--json", "dkim", "keygen", "--domain", "example.com.", "--selector", "s1", "--type", kind)
			var out map[string]string
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
				t.Fatalf("--json: %v %q", err, r.stdout)
			}
			if out["dns_name"] != "s1._domainkey.example.com" || !strings.HasPrefix(out["dns_txt"], "v=DKIM1; k="+kind) {
				t.Errorf("--json: %v", out)
			}
			if _, err := dkim.ParsePrivateKey(out["dkim_private_key"]); err != nil {
				t.Errorf("--json key: %v", err)
			}
		})
	}
	if r := run(t, nil, "dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--bits", "1024"); r.code != ExitUsage {
		t.Errorf("1024-bit RSA: exit %d, want %d", r.code, ExitUsage)
	}
	if r := run(t, nil, "dkim", "keygen", "--selector", "s1"); r.code != ExitUsage {
		t.Errorf("no --domain: exit %d", r.code)
	}
}
