package cli

import (
	"fmt"
	"strings"

	"github.com/mailproxy/mailproxy/internal/dkim"
)

type dkimCmd struct {
	Keygen dkimKeygenCmd `cmd:"" help:"Print a new DKIM private key and the DNS TXT record that publishes it."`
}

type dkimKeygenCmd struct {
	Domain   string `required:"" help:"Signing domain (d=), e.g. example.com." placeholder:"DOMAIN"`
	Selector string `required:"" help:"Selector (s=), e.g. mail2026." placeholder:"SELECTOR"`
	Type     string `default:"rsa" enum:"rsa,ed25519" help:"Key type: rsa (understood by every receiver) or ed25519."`
	Bits     int    `default:"2048" help:"RSA key size in bits (at least 2048)."`
}

func (c dkimKeygenCmd) Run(e *env) error {
	domain, selector := strings.TrimSuffix(strings.TrimSpace(c.Domain), "."), strings.TrimSpace(c.Selector)
	if domain == "" || selector == "" {
		return usageErrorf("dkim keygen: --domain and --selector must not be empty")
	}
	key, pemText, err := dkim.GenerateKey(c.Type, c.Bits)
	if err != nil {
		return usageErrorf("dkim keygen: %w", err)
	}
	record, err := dkim.PublicRecord(key)
	if err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	name := selector + "._domainkey." + domain
	if e.flags.JSON {
		return writeJSON(e.stdout, map[string]string{"dkim_domain": domain, "dkim_selector": selector,
			"dkim_private_key": pemText, "dns_name": name, "dns_txt": record})
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n# Publish this TXT record, then set dkim_domain=%s, dkim_selector=%s and\n"+
		"# dkim_private_key (the PEM block above) on the account (POST /account).\n%s\n",
		strings.TrimSpace(pemText), domain, selector, dkim.ZoneRecord(domain, selector, record))
	return err
}
