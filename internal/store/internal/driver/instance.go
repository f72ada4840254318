package driver

import "github.com/mailproxy/mailproxy/internal/store"

// DefaultInstance is the instance settings a store reports before any are
// stored (api.md §4.3).
func DefaultInstance() store.Instance {
	return store.Instance{
		Name:               "mail-proxy",
		Edition:            "ee",
		BounceIMAPPort:     993,
		BounceIMAPFolder:   "INBOX",
		BouncePollInterval: 60,
	}
}
