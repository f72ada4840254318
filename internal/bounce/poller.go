package bounce

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailproxy/mailproxy/internal/store"
)

// ProcessedFlag marks a notification this poller has recorded (a keyword,
// so a restart, or another instance, never processes it again).
const ProcessedFlag = "$MailProxyProcessed"

// leaseName is the stored lease the pollers of one database share.
const leaseName = "bounce-poller"

// Settings are the effective bounce settings (GMP_BOUNCE_* or the stored
// instance settings).
type Settings struct {
	Enabled      bool
	Host         string
	Port         int
	TLS          bool // implicit TLS (GMP_BOUNCE_IMAP_SSL)
	User         string
	Password     string
	Folder       string
	PollInterval time.Duration
}

// Options configure a Poller.
type Options struct {
	Owner    string                                      // instance id, for the poll lease
	Settings func(ctx context.Context) (Settings, error) // read before every poll
	// OnBounce is called after new bounce events were recorded (wakes the report loop).
	OnBounce  func(tenantID string)
	TLSConfig *tls.Config           // nil: system roots, ServerName from the host
	Registry  prometheus.Registerer // required: the instance's registry
	Logger    *slog.Logger
	Now       func() time.Time
}

// Poller polls the bounce mailbox. Create it with New, run it with Run.
type Poller struct {
	st   store.Deliverability // lease, message lookup, bounce events, suppressions
	opts Options
	log  *slog.Logger
	kick chan struct{}

	processed, matched, unmatched, complaints prometheus.Counter

	mu   sync.Mutex
	seen map[string]bool // unmatched notifications counted already (uidvalidity/uid)
}

// New builds a poller; it starts nothing until Run.
func New(st store.Deliverability, opts Options) *Poller {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		opts.Registry.MustRegister(c)
		return c
	}
	return &Poller{st: st, opts: opts, log: opts.Logger, kick: make(chan struct{}, 1), seen: map[string]bool{},
		processed:  counter("mailproxy_bounce_processed_total", "Bounce notifications and complaints recorded (and flagged processed)."),
		matched:    counter("mailproxy_bounce_matched_total", "Bounce events added to a matched message."),
		unmatched:  counter("mailproxy_bounce_unmatched_total", "Notifications that matched no message (left unflagged; counted once per process)."),
		complaints: counter("mailproxy_bounce_complaints_total", "ARF abuse complaints that suppressed a recipient."),
	}
}

// Reload makes the poller re-read its settings and poll now.
func (p *Poller) Reload() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run polls until ctx ends. Disabled settings are re-read every minute.
// On the way out it gives up the poll lease, so a restarted or another
// instance polls at once rather than after the lease.
func (p *Poller) Run(ctx context.Context) error {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		now := p.opts.Now()
		_, _ = p.st.AcquireLease(rctx, leaseName, p.opts.Owner, now, now) // ends our lease if we hold it
	}()
	for {
		wait := p.cycle(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-time.After(wait):
		}
	}
}

// cycle polls once if bounce processing is on and this instance holds (or
// takes) the poll lease; it returns the time to the next cycle.
func (p *Poller) cycle(ctx context.Context) time.Duration {
	wait := time.Minute
	s, err := p.opts.Settings(ctx)
	switch {
	case err != nil:
		p.log.Warn("bounce settings", "err", err)
	case s.Enabled && s.Host != "":
		if s.PollInterval > 0 {
			wait = s.PollInterval
		}
		now := p.opts.Now()
		ok, err := p.st.AcquireLease(ctx, leaseName, p.opts.Owner, now, now.Add(2*wait+10*time.Second))
		switch {
		case err != nil:
			p.log.Warn("bounce poll lease", "err", err)
		case ok:
			if _, err := p.Poll(ctx, s); err != nil && ctx.Err() == nil {
				p.log.Warn("bounce poll", "host", s.Host, "folder", s.Folder, "err", err)
			}
		}
	}
	return wait
}

// PollResult counts one poll.
type PollResult struct {
	Processed, Matched, Unmatched int
}

// Poll reads the folder once: every notification not yet flagged processed
// is parsed, matched and recorded; recorded ones are flagged.
func (p *Poller) Poll(ctx context.Context, s Settings) (PollResult, error) {
	var res PollResult
	c, err := p.connect(ctx, s)
	if err != nil {
		return res, err
	}
	defer func() { _ = c.Logout() }()
	stop := context.AfterFunc(ctx, func() { _ = c.Terminate() })
	defer stop()

	folder := s.Folder
	if folder == "" {
		folder = "INBOX"
	}
	mbox, err := c.Select(folder, false)
	if err != nil {
		return res, fmt.Errorf("select %q: %w", folder, err)
	}
	crit := imap.NewSearchCriteria()
	crit.WithoutFlags = []string{ProcessedFlag}
	uids, err := c.UidSearch(crit)
	if err != nil {
		return res, fmt.Errorf("search: %w", err)
	}
	const perPoll = 500 // bounded work per poll; the rest next time
	if len(uids) > perPoll {
		uids = uids[:perPoll]
	}
	if len(uids) == 0 {
		return res, nil
	}
	set := new(imap.SeqSet)
	set.AddNum(uids...)
	section := &imap.BodySectionName{Peek: true}
	ch := make(chan *imap.Message, 16)
	fetchErr := make(chan error, 1)
	go func() { fetchErr <- c.UidFetch(set, []imap.FetchItem{imap.FetchUid, section.FetchItem()}, ch) }()
	type fetched struct {
		uid uint32
		raw []byte
	}
	var msgs []fetched
	for m := range ch {
		lit := m.GetBody(section)
		if lit == nil {
			continue
		}
		buf := make([]byte, 0, lit.Len())
		b := make([]byte, 32<<10)
		for len(buf) < maxMessage {
			n, err := lit.Read(b)
			buf = append(buf, b[:n]...)
			if err != nil {
				break
			}
		}
		msgs = append(msgs, fetched{m.Uid, buf})
	}
	if err := <-fetchErr; err != nil {
		return res, fmt.Errorf("fetch: %w", err)
	}
	var done []uint32
	for _, m := range msgs {
		key := strconv.FormatUint(uint64(mbox.UidValidity), 10) + "/" + strconv.FormatUint(uint64(m.uid), 10)
		recorded, err := p.handle(ctx, m.raw)
		if err != nil {
			return res, err
		}
		if !recorded {
			p.mu.Lock()
			first := !p.seen[key]
			p.seen[key] = true
			p.mu.Unlock()
			if first {
				p.unmatched.Inc()
				res.Unmatched++
			}
			continue
		}
		done = append(done, m.uid)
	}
	if len(done) > 0 {
		flagSet := new(imap.SeqSet)
		flagSet.AddNum(done...)
		item := imap.FormatFlagsOp(imap.AddFlags, true)
		if err := c.UidStore(flagSet, item, []any{ProcessedFlag, imap.SeenFlag}, nil); err != nil {
			// The events are recorded once anyway (AddBounce is idempotent).
			return res, fmt.Errorf("flag processed: %w", err)
		}
		p.processed.Add(float64(len(done)))
		res.Processed = len(done)
	}
	res.Matched = len(done)
	return res, nil
}

func (p *Poller) connect(ctx context.Context, s Settings) (*client.Client, error) {
	port := s.Port
	if port == 0 {
		port = 143
		if s.TLS {
			port = 993
		}
	}
	addr := net.JoinHostPort(s.Host, strconv.Itoa(port))
	d := &net.Dialer{Timeout: 15 * time.Second}
	var (
		c   *client.Client
		err error
	)
	if s.TLS {
		cfg := p.opts.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
		}
		c, err = client.DialWithDialerTLS(d, addr, cfg)
	} else {
		c, err = client.DialWithDialer(d, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	c.Timeout = time.Minute
	if err := c.Login(s.User, s.Password); err != nil {
		_ = c.Logout()
		return nil, fmt.Errorf("login as %q: %w", s.User, err)
	}
	_ = ctx
	return c, nil
}

// handle parses and records one notification; recorded is false for one
// that is not a bounce or matches no message (left alone).
func (p *Poller) handle(ctx context.Context, raw []byte) (recorded bool, err error) {
	n, err := Parse(raw)
	if err != nil || n.Kind == NotBounce || len(n.Recipients) == 0 {
		return false, nil
	}
	m, ok, err := p.match(ctx, n)
	if err != nil || !ok {
		return false, err
	}
	now := p.opts.Now()
	added := false
	for _, r := range n.Recipients {
		if n.Kind == Complaint {
			if r.Address == "" {
				continue
			}
			k, err := p.st.AddSuppressions(ctx, []store.Suppression{{TenantID: m.TenantID, Address: r.Address,
				Reason: "abuse complaint", Source: store.SuppressedByComplaint, CreatedAt: now}})
			if err != nil && !errors.Is(err, store.ErrTenantNotFound) {
				return false, err
			}
			if k > 0 {
				p.complaints.Inc()
			}
			continue
		}
		typ := "soft"
		if r.Hard() {
			typ = "hard"
		}
		meta, _ := json.Marshal(map[string]any{"bounce_type": typ, "bounce_code": r.Status,
			"bounce_reason": r.Reason, "recipient": strings.ToLower(r.Address)})
		ok, err := p.st.AddBounce(ctx, store.Event{MessagePK: m.PK, At: now, Description: r.Reason, Metadata: meta})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		if ok {
			added = true
			p.matched.Inc()
		}
		if r.Hard() && r.Address != "" {
			_, err := p.st.AddSuppressions(ctx, []store.Suppression{{TenantID: m.TenantID, Address: r.Address,
				Reason: r.Reason, Source: store.SuppressedByBounce, CreatedAt: now}})
			if err != nil && !errors.Is(err, store.ErrTenantNotFound) {
				return false, err
			}
		}
	}
	if added && p.opts.OnBounce != nil {
		p.opts.OnBounce(m.TenantID)
	}
	p.log.Info("bounce recorded", "msg_id", m.ID, "tenant_id", m.TenantID, "kind", n.Kind, "recipients", len(n.Recipients))
	return true, nil
}

// match finds the message a notification is about: a returned Message-ID
// equal to the one we sent (message_id, or the generated <pk@domain>),
// and/or its X-Genro-Mail-ID (the client id).
func (p *Poller) match(ctx context.Context, n Notification) (store.Message, bool, error) {
	mid := strings.TrimSpace(n.MessageID)
	var pk string
	if local, _, ok := strings.Cut(strings.Trim(mid, "<>"), "@"); ok {
		pk = local
	}
	if pk == "" && n.MailID == "" {
		return store.Message{}, false, nil
	}
	cands, err := p.st.FindMessages(ctx, store.MessageLookup{PK: pk, ClientID: n.MailID})
	if err != nil {
		return store.Message{}, false, err
	}
	best, bestScore := store.Message{}, 0
	for _, m := range cands {
		score := 0
		if mid != "" && sentMessageID(m) == mid {
			score += 2
		}
		if n.MailID != "" && m.ID == n.MailID {
			score++
		}
		if score > bestScore {
			best, bestScore = m, score
		}
	}
	return best, bestScore > 0, nil
}

// sentMessageID is the Message-ID the message went out with (delivery.md §5).
func sentMessageID(m store.Message) string {
	pl, err := store.DecodePayload(m.Payload)
	if err != nil {
		return ""
	}
	if pl.MessageID != "" {
		return pl.MessageID
	}
	domain := "localhost"
	if a, err := parseAddress(pl.From); err == nil {
		if i := strings.LastIndexByte(a, '@'); i >= 0 {
			domain = a[i+1:]
		}
	}
	return "<" + m.PK + "@" + domain + ">"
}

func parseAddress(s string) (string, error) {
	a := firstAddress(s)
	if a == "" {
		return "", errors.New("no address")
	}
	return a, nil
}
