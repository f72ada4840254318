package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mailproxy/mailproxy/internal/store"
)

// accountCases cover account CRUD (api.md §4.1, lifecycle.md §7).
func accountCases() []testCase {
	return []testCase{
		{"UpsertGetReplace", testAccountsUpsertGetReplace},
		{"ListAndDelete", testAccountsListDelete},
		{"DeleteKeepsMessages", testAccountsDeleteKeepsMessages},
	}
}

var ignoreAccountTimes = cmpopts.IgnoreFields(store.Account{}, "CreatedAt", "UpdatedAt")

func testAccountsUpsertGetReplace(t *testing.T, h *harness) {
	h.tenant("t1")
	full := store.Account{
		TenantID:       "t1",
		ID:             "smtp-main",
		Host:           "smtp.example.com",
		Port:           587,
		User:           "mailer",
		Password:       "p@ss word",
		TTL:            120,
		LimitPerMinute: ptr(50),
		LimitPerHour:   ptr(1000),
		LimitPerDay:    ptr(20000),
		LimitBehavior:  "reject",
		UseTLS:         ptr(true),
		TLSVerify:      false,
		BatchSize:      ptr(25),
		IsPECAccount:   true,
		IMAPHost:       ptr("imap.example.com"),
		IMAPPort:       ptr(993),
		IMAPUser:       ptr("imap-user"),
		IMAPPassword:   "imap-secret",
		IMAPSSL:        ptr(true),
		DKIMDomain:     "example.com",
		DKIMSelector:   "mail2026",
		DKIMPrivateKey: "-----BEGIN PRIVATE KEY-----\nstored as given\n-----END PRIVATE KEY-----",
		HostByTenant:   true,
	}
	if err := h.s.UpsertAccount(h.ctx, full); err != nil {
		t.Fatalf("UpsertAccount: %v", err)
	}
	got, err := h.s.GetAccount(h.ctx, "t1", "smtp-main")
	if err != nil {
		t.Fatalf("GetAccount: %v", err)
	}
	if diff := cmp.Diff(full, got, cmpOpts, ignoreAccountTimes); diff != "" {
		t.Errorf("GetAccount after create differs (-want +got):\n%s", diff)
	}
	if got.CreatedAt.IsZero() {
		t.Errorf("GetAccount created_at is zero, want set")
	}

	// UpsertAccount replaces every field: nil pointers clear, false stays false.
	replacement := store.Account{
		TenantID: "t1", ID: "smtp-main", Host: "127.0.0.1", Port: 2525, TTL: 300,
		LimitBehavior: "defer", UseTLS: ptr(false), TLSVerify: true,
	}
	if err := h.s.UpsertAccount(h.ctx, replacement); err != nil {
		t.Fatalf("UpsertAccount(replace): %v", err)
	}
	got, err = h.s.GetAccount(h.ctx, "t1", "smtp-main")
	if err != nil {
		t.Fatalf("GetAccount: %v", err)
	}
	if diff := cmp.Diff(replacement, got, cmpOpts, ignoreAccountTimes); diff != "" {
		t.Errorf("GetAccount after replacement differs (-want +got):\n%s", diff)
	}
}

func testAccountsListDelete(t *testing.T, h *harness) {
	h.tenant("t1")
	h.tenant("t2")
	h.account("t1", "b")
	h.account("t1", "a")
	h.account("t2", "a")

	keys := func(tenantID string) []string {
		t.Helper()
		accs, err := h.s.ListAccounts(h.ctx, tenantID)
		if err != nil {
			t.Fatalf("ListAccounts(%q): %v", tenantID, err)
		}
		var out []string
		for _, a := range accs {
			out = append(out, a.TenantID+"/"+a.ID)
		}
		slices.Sort(out) // the interface does not fix a listing order
		return out
	}
	if got := keys("t1"); !slices.Equal(got, []string{"t1/a", "t1/b"}) {
		t.Errorf("ListAccounts(t1) = %q, want [t1/a t1/b]", got)
	}
	if got := keys(""); !slices.Equal(got, []string{"t1/a", "t1/b", "t2/a"}) {
		t.Errorf("ListAccounts(all) = %q, want [t1/a t1/b t2/a]", got)
	}

	if err := h.s.DeleteAccount(h.ctx, "t1", "a"); err != nil {
		t.Fatalf("DeleteAccount(t1, a): %v", err)
	}
	if _, err := h.s.GetAccount(h.ctx, "t1", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAccount of a deleted account: err %v, want ErrNotFound", err)
	}
	if _, err := h.s.GetAccount(h.ctx, "t2", "a"); err != nil {
		t.Errorf("GetAccount(t2, a) after deleting t1/a: %v, want it untouched", err)
	}
	if err := h.s.DeleteAccount(h.ctx, "t1", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteAccount of a missing account: err %v, want ErrNotFound", err)
	}
	if err := h.s.DeleteAccount(h.ctx, "t1", "never"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteAccount(t1, never): err %v, want ErrNotFound", err)
	}
	if got := keys(""); !slices.Equal(got, []string{"t1/b", "t2/a"}) {
		t.Errorf("ListAccounts(all) after delete = %q, want [t1/b t2/a]", got)
	}
}

func testAccountsDeleteKeepsMessages(t *testing.T, h *harness) {
	h.tenantWithAccount("t1")
	h.enqueueQueued(at(0), msg("t1", "m1", "acc"))
	if err := h.s.DeleteAccount(h.ctx, "t1", "acc"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	r := h.record("t1", "m1")
	if r.AccountID != "acc" || r.FinalAt != nil {
		t.Errorf("message after its account was deleted: account %q final %s, want kept and unprocessed", r.AccountID, fmtTime(r.FinalAt))
	}
	// A new item naming the deleted account is now rejected.
	res := h.enqueue(at(1), msg("t1", "m2", "acc"))
	if res[0].Status != store.Rejected || res[0].Reason != "account not found for tenant" {
		t.Errorf("item naming the deleted account: %s %q, want Rejected \"account not found for tenant\"", statusName(res[0].Status), res[0].Reason)
	}
}
