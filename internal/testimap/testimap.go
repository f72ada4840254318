// Package testimap runs a real IMAP server (go-imap v1 with its memory
// backend) on loopback for tests: the bounce mailbox of internal/bounce.
// The memory backend is not safe for concurrent use, so every backend call
// runs under one lock.
package testimap

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/backend"
	"github.com/emersion/go-imap/backend/memory"
	"github.com/emersion/go-imap/client"
	"github.com/emersion/go-imap/server"
)

// The mailbox's credentials (the memory backend's only user).
const (
	User     = "username"
	Password = "password"
)

// Server is a running IMAP server.
type Server struct {
	t    testing.TB
	srv  *server.Server
	addr string
}

// Start serves on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(&lockedBackend{be: memory.New()})
	s.AllowInsecureAuth = true
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return &Server{t: t, srv: s, addr: ln.Addr().String()}
}

// Host and Port are where it listens.
func (s *Server) Host() string { h, _, _ := net.SplitHostPort(s.addr); return h }

// Port is the listening port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

func (s *Server) dial() *client.Client {
	s.t.Helper()
	c, err := client.Dial(s.addr)
	if err != nil {
		s.t.Fatalf("imap dial: %v", err)
	}
	c.Timeout = 30 * time.Second
	if err := c.Login(User, Password); err != nil {
		s.t.Fatalf("imap login: %v", err)
	}
	return c
}

// Append adds a message to INBOX over IMAP, as a mail server delivering a
// bounce would.
func (s *Server) Append(raw []byte) {
	s.t.Helper()
	c := s.dial()
	defer func() { _ = c.Logout() }()
	if err := c.Append("INBOX", nil, time.Now(), literal(raw)); err != nil {
		s.t.Fatalf("imap append: %v", err)
	}
}

// Flags returns each INBOX message's flags by UID.
func (s *Server) Flags() map[uint32][]string {
	s.t.Helper()
	c := s.dial()
	defer func() { _ = c.Logout() }()
	mbox, err := c.Select("INBOX", true)
	if err != nil {
		s.t.Fatalf("imap select: %v", err)
	}
	out := map[uint32][]string{}
	if mbox.Messages == 0 {
		return out
	}
	set := new(imap.SeqSet)
	set.AddRange(1, mbox.Messages)
	ch := make(chan *imap.Message, 16)
	done := make(chan error, 1)
	go func() { done <- c.Fetch(set, []imap.FetchItem{imap.FetchUid, imap.FetchFlags}, ch) }()
	for m := range ch {
		out[m.Uid] = m.Flags
	}
	if err := <-done; err != nil {
		s.t.Fatalf("imap fetch: %v", err)
	}
	return out
}

type bytesLiteral struct {
	data []byte
	off  int
}

func literal(b []byte) imap.Literal { return &bytesLiteral{data: b} }

func (l *bytesLiteral) Len() int { return len(l.data) }

func (l *bytesLiteral) Read(p []byte) (int, error) {
	if l.off >= len(l.data) {
		return 0, io.EOF
	}
	n := copy(p, l.data[l.off:])
	l.off += n
	return n, nil
}

// lockedBackend serialises every call into the memory backend.
type lockedBackend struct {
	mu sync.Mutex
	be *memory.Backend
}

func (b *lockedBackend) Login(ci *imap.ConnInfo, user, pass string) (backend.User, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := b.be.Login(ci, user, pass)
	if err != nil {
		return nil, err
	}
	return &lockedUser{mu: &b.mu, u: u}, nil
}

type lockedUser struct {
	mu *sync.Mutex
	u  backend.User
}

func (u *lockedUser) Username() string { u.mu.Lock(); defer u.mu.Unlock(); return u.u.Username() }

func (u *lockedUser) ListMailboxes(subscribed bool) ([]backend.Mailbox, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	list, err := u.u.ListMailboxes(subscribed)
	for i := range list {
		list[i] = &lockedMailbox{mu: u.mu, m: list[i]}
	}
	return list, err
}

func (u *lockedUser) GetMailbox(name string) (backend.Mailbox, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	m, err := u.u.GetMailbox(name)
	if err != nil {
		return nil, err
	}
	return &lockedMailbox{mu: u.mu, m: m}, nil
}

func (u *lockedUser) CreateMailbox(name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.u.CreateMailbox(name)
}

func (u *lockedUser) DeleteMailbox(name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.u.DeleteMailbox(name)
}

func (u *lockedUser) RenameMailbox(from, to string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.u.RenameMailbox(from, to)
}

func (u *lockedUser) Logout() error { u.mu.Lock(); defer u.mu.Unlock(); return u.u.Logout() }

type lockedMailbox struct {
	mu *sync.Mutex
	m  backend.Mailbox
}

func (m *lockedMailbox) Name() string { m.mu.Lock(); defer m.mu.Unlock(); return m.m.Name() }

func (m *lockedMailbox) Info() (*imap.MailboxInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m.Info()
}

func (m *lockedMailbox) Status(items []imap.StatusItem) (*imap.MailboxStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m.Status(items)
}

func (m *lockedMailbox) SetSubscribed(v bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m.SetSubscribed(v)
}

func (m *lockedMailbox) Check() error { m.mu.Lock(); defer m.mu.Unlock(); return m.m.Check() }

// ListMessages collects under the lock, then hands the messages over, so a
// slow reader of ch never holds it.
func (m *lockedMailbox) ListMessages(uid bool, set *imap.SeqSet, items []imap.FetchItem, ch chan<- *imap.Message) error {
	inner := make(chan *imap.Message, 1024)
	var out []*imap.Message
	done := make(chan struct{})
	go func() {
		for msg := range inner {
			out = append(out, msg)
		}
		close(done)
	}()
	m.mu.Lock()
	err := m.m.ListMessages(uid, set, items, inner)
	m.mu.Unlock()
	<-done
	for _, msg := range out {
		ch <- msg
	}
	close(ch)
	return err
}

func (m *lockedMailbox) SearchMessages(uid bool, c *imap.SearchCriteria) ([]uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m.SearchMessages(uid, c)
}

func (m *lockedMailbox) CreateMessage(flags []string, date time.Time, body imap.Literal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m.CreateMessage(flags, date, body)
}

func (m *lockedMailbox) UpdateMessagesFlags(uid bool, set *imap.SeqSet, op imap.FlagsOp, flags []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m.UpdateMessagesFlags(uid, set, op, flags)
}

func (m *lockedMailbox) CopyMessages(uid bool, set *imap.SeqSet, dest string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m.CopyMessages(uid, set, dest)
}

func (m *lockedMailbox) Expunge() error { m.mu.Lock(); defer m.mu.Unlock(); return m.m.Expunge() }
