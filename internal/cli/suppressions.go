package cli

import (
	"fmt"
)

type suppressionsCmd struct {
	List   suppressionsListCmd   `cmd:"" help:"List the tenant's suppressed addresses."`
	Add    suppressionsAddCmd    `cmd:"" help:"Suppress addresses: no more mail is sent to them."`
	Remove suppressionsRemoveCmd `cmd:"" help:"Remove an address from the suppression list."`
}

type suppressionsListCmd struct{}

func (suppressionsListCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	list, err := a.ListSuppressions(e.ctx, a.tenant)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, list)
	}
	t := newTable(e.stdout, "ADDRESS", "SOURCE", "CREATED", "REASON")
	for _, s := range list {
		t.row(s.Address, s.Source, s.CreatedAt, s.Reason)
	}
	return t.flush()
}

type suppressionsAddCmd struct {
	Addresses []string `arg:"" help:"Addresses to suppress."`
	Reason    string   `help:"Why (shown in the list)." placeholder:"TEXT"`
}

func (c *suppressionsAddCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	n, err := a.AddSuppressions(e.ctx, a.tenant, c.Addresses, c.Reason)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]any{"ok": true, "added": n})
	}
	_, err = fmt.Fprintf(e.stdout, "added %d\n", n)
	return err
}

type suppressionsRemoveCmd struct {
	Address string `arg:"" help:"Address to remove (any case)."`
}

func (c *suppressionsRemoveCmd) Run(e *env) error {
	a, err := e.api()
	if err != nil {
		return err
	}
	n, err := a.RemoveSuppression(e.ctx, a.tenant, c.Address)
	if err != nil {
		return err
	}
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]any{"ok": true, "removed": n})
	}
	_, err = fmt.Fprintf(e.stdout, "removed %d\n", n)
	return err
}
