package api

import (
	"context"
	"fmt"
	"net/mail"
	"strings"

	"github.com/mailproxy/mailproxy/internal/store"
)

// envelopeAddresses are the lower-cased RCPT TO addresses of a payload's
// to, cc and bcc, de-duplicated, in order. Entries that do not parse are
// skipped (itemReason has refused them already).
func envelopeAddresses(to, cc, bcc []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, list := range [][]string{to, cc, bcc} {
		for _, item := range list {
			addrs, err := mail.ParseAddressList(item)
			if err != nil {
				continue
			}
			for _, a := range addrs {
				k := strings.ToLower(a.Address)
				if !seen[k] {
					seen[k] = true
					out = append(out, k)
				}
			}
		}
	}
	return out
}

// suppressedFor loads, in one store read per tenant, which recipients of
// the request's items each tenant suppresses.
func (s *server) suppressedFor(ctx context.Context, items []item, defaultTenant string) (map[string]map[string]bool, error) {
	byTenant := map[string][]string{}
	for i := range items {
		it := &items[i]
		tenant := defaultTenant
		if it.tenantID != nil {
			tenant = *it.tenantID
		}
		if strings.TrimSpace(tenant) == "" {
			continue
		}
		byTenant[tenant] = append(byTenant[tenant], envelopeAddresses(it.payload.To, it.payload.Cc, it.payload.Bcc)...)
	}
	out := make(map[string]map[string]bool, len(byTenant))
	for tenant, addrs := range byTenant {
		set, err := s.st.SuppressedAmong(ctx, tenant, addrs)
		if err != nil {
			return nil, fmt.Errorf("suppression check: %w", err)
		}
		out[tenant] = set
	}
	return out, nil
}

// applySuppressions leaves suppressed recipients out of the envelope (named
// in the payload's suppressed list, and so in the message's history); it
// returns the reject reason when every recipient is suppressed.
func applySuppressions(p *store.Payload, set map[string]bool) string {
	if len(set) == 0 {
		return ""
	}
	all := envelopeAddresses(p.To, p.Cc, p.Bcc)
	var hit []string
	for _, a := range all {
		if set[a] {
			hit = append(hit, a)
		}
	}
	switch {
	case len(hit) == 0:
		return ""
	case len(hit) == len(all):
		return reasonSuppressed + strings.Join(hit, ", ")
	}
	p.Suppressed = hit
	return ""
}
