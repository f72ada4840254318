package bounce

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/store/sqlite"
	"github.com/mailproxy/mailproxy/internal/testimap"
)

func setup(t *testing.T) (*sqlite.Store, *testimap.Server, *Poller, Settings) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "b.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, tenant := range []string{"t1", "t2"} {
		if _, err := st.UpsertTenant(ctx, store.Tenant{ID: tenant, Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	srv := testimap.Start(t)
	s := Settings{Enabled: true, Host: srv.Host(), Port: srv.Port(), User: testimap.User, Password: testimap.Password, Folder: "INBOX"}
	p := New(st, Options{Owner: "a", Settings: func(context.Context) (Settings, error) { return s, nil }, Registry: prometheus.NewRegistry()})
	return st, srv, p, s
}

func enqueue(t *testing.T, st store.Store, tenant, id, to, messageID string) string {
	t.Helper()
	pl, _ := json.Marshal(store.Payload{ID: id, TenantID: tenant, AccountID: "acc", From: "shop@example.com",
		To: []string{to}, Subject: "s", MessageID: messageID})
	res, err := st.EnqueueBatch(context.Background(), []store.NewMessage{{TenantID: tenant, ID: id, AccountID: "acc", Payload: pl}}, time.Now())
	if err != nil || len(res) != 1 {
		t.Fatalf("enqueue: %+v %v", res, err)
	}
	return res[0].PK
}

// TestPollComplaintsNoticesAndUnmatched: a complaint suppresses with source
// complaint, a provider's notice matches by the quoted X-Genro-Mail-ID in
// the right tenant (Message-ID breaks the tie between two tenants' equal
// client ids), and what matches nothing is counted once however often it
// is polled.
func TestPollComplaintsNoticesAndUnmatched(t *testing.T) {
	t.Parallel()
	st, srv, p, s := setup(t)
	ctx := context.Background()
	enqueue(t, st, "t1", "promo", "angry@example.net", "<promo-1@example.com>")
	enqueue(t, st, "t2", "promo", "other@example.net", "<promo-2@example.com>")
	srv.Append(crlf(`From: fbl@isp.example
To: bounces@example.com
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: message/feedback-report

Feedback-Type: abuse
Original-Rcpt-To: angry@example.net

--B
Content-Type: text/rfc822-headers

To: angry@example.net
Message-ID: <promo-2@example.com>
X-Genro-Mail-ID: promo
--B--
`))
	srv.Append(testimap.DSN{Recipient: "x@example.net", Status: "5.1.1", Diagnostic: "550 no", MessageID: "<nobody@example.com>"}.Bytes())

	for i := range 2 {
		res, err := p.Poll(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		want := PollResult{Processed: 1, Matched: 1, Unmatched: 2} // the DSN for nobody and the mailbox's own message
		if i == 1 {
			want = PollResult{}
		}
		if res != want {
			t.Errorf("poll %d = %+v, want %+v", i+1, res, want)
		}
	}
	var m dto.Metric
	if err := p.unmatched.Write(&m); err != nil || m.Counter.GetValue() != 2 {
		t.Errorf("unmatched counter %v, want 2 (%v)", m.Counter.GetValue(), err)
	}
	// Message-ID <promo-2@…> names t2's message, so t2 suppresses.
	for tenant, want := range map[string]int{"t1": 0, "t2": 1} {
		list, err := st.ListSuppressions(ctx, tenant)
		if err != nil || len(list) != want {
			t.Fatalf("%s suppressions %+v, %v; want %d", tenant, list, err, want)
		}
		if want == 1 && (list[0].Address != "angry@example.net" || list[0].Source != store.SuppressedByComplaint) {
			t.Errorf("suppression %+v", list[0])
		}
	}
	flagged := 0
	for _, f := range srv.Flags() {
		for _, x := range f {
			if strings.EqualFold(x, ProcessedFlag) {
				flagged++
			}
		}
	}
	if flagged != 1 {
		t.Errorf("%d flagged, want 1 (the complaint)", flagged)
	}
}

// TestPollsOnlyWithTheLease: a poller whose lease another instance holds
// does not read the mailbox; once that lease ends, it does.
func TestPollsOnlyWithTheLease(t *testing.T) {
	t.Parallel()
	st, srv, p, _ := setup(t)
	ctx := context.Background()
	pk := enqueue(t, st, "t1", "m1", "bob@example.net", "")
	if ok, err := st.AcquireLease(ctx, leaseName, "other-instance", time.Now(), time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatal(err)
	}
	srv.Append(testimap.DSN{Recipient: "bob@example.net", Status: "5.1.1", Diagnostic: "550 5.1.1 unknown", MailID: "m1"}.Bytes())
	bounces := func() int {
		recs, err := st.ListMessages(ctx, store.MessageFilter{TenantID: "t1", IncludeHistory: true}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range recs {
			for _, e := range r.History {
				if e.Type == store.EventBounce && e.MessagePK == pk {
					n++
				}
			}
		}
		return n
	}
	p.cycle(ctx)
	if n := bounces(); n != 0 {
		t.Fatalf("%d bounces recorded without the lease", n)
	}
	// The other instance gives its lease up (as Run does on the way out).
	if _, err := st.AcquireLease(ctx, leaseName, "other-instance", time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	p.cycle(ctx)
	if n := bounces(); n != 1 {
		t.Fatalf("%d bounces once the lease was free, want 1", n)
	}
	if got, _ := st.SuppressedAmong(ctx, "t1", []string{"bob@example.net"}); !got["bob@example.net"] {
		t.Error("hard bounce did not suppress")
	}
}
