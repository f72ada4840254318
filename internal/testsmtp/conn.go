package testsmtp

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"
)

// listener hands go-smtp the accepted connections, after applying the
// CONNECT-stage faults and wrapping each in a trackedConn.
type listener struct {
	net.Listener
	srv       *Server
	closeOnce sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := l.srv.track(raw)
		f, ok := l.srv.faults.match(StageConnect, "")
		if !ok {
			return tc, nil
		}
		switch f.Action {
		case ActionDelay:
			tc.greetDelay, tc.greetRelease = f.Delay, f.Release
			return tc, nil
		case ActionStall:
			// Keep it open and silent; Down or Close releases it.
			continue
		case ActionReply:
			tc.greetDelay, tc.greetRelease = f.Delay, f.Release
			// Written from a goroutine so a delay never blocks Accept.
			l.srv.goSafe(func() {
				e := f.smtpError()
				tc.sleep(f.Delay, f.Release)
				if _, err := fmt.Fprintf(tc, "%d %s\r\n", e.Code, replyText(f, e.Message)); err != nil {
					l.srv.log.Debug("testsmtp: connect reply", "err", err)
				}
				_ = tc.Close()
			})
			continue
		default: // ActionDrop
			l.srv.goSafe(func() {
				tc.sleep(f.Delay, f.Release)
				_ = tc.Close()
			})
			continue
		}
	}
}

// Close is idempotent: go-smtp closes its listeners again on shutdown.
func (l *listener) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.Listener.Close() })
	return err
}

func replyText(f Fault, msg string) string {
	if f.Enhanced == "" {
		return msg
	}
	return f.Enhanced + " " + msg
}

// trackedConn is one server-side connection: it carries the id, lets Down
// and Close end it, and counts the client's commands for as long as it can
// read them in clear (plain sessions, implicit TLS; not after STARTTLS).
type trackedConn struct {
	net.Conn
	id           int64
	srv          *Server
	tls          bool
	greetDelay   time.Duration
	greetRelease <-chan struct{}
	closed       chan struct{}
	closeOnce    sync.Once

	mu      sync.Mutex // guards the scanner below
	wrote   bool
	line    []byte
	inData  bool
	blind   bool // after STARTTLS the bytes are ciphertext
	skipBig bool // current line exceeded the buffer
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.scan(p[:n])
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	first := !c.wrote
	c.wrote = true
	if len(p) >= 4 && string(p[:4]) == "354 " {
		c.inData = true
	}
	c.mu.Unlock()
	if first {
		c.sleep(c.greetDelay, c.greetRelease)
	}
	return c.Conn.Write(p)
}

// Close ends the connection and releases anything stalled on it.
func (c *trackedConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.Conn.Close()
		c.srv.untrack(c)
	})
	return err
}

// sleep waits d or until the connection closes.
func (c *trackedConn) sleep(d time.Duration, release <-chan struct{}) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.closed:
	case <-release: // nil without a Release: never ready
	}
}

const maxScanLine = 1024

func (c *trackedConn) scan(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(p) > 0 && !c.blind {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.appendLine(p)
			return
		}
		c.appendLine(p[:i])
		p = p[i+1:]
		line := bytes.TrimSuffix(c.line, []byte("\r"))
		big := c.skipBig
		c.line, c.skipBig = c.line[:0], false
		if c.inData {
			if len(line) == 1 && line[0] == '.' {
				c.inData = false
			}
			continue
		}
		if big {
			continue
		}
		verb, _, _ := bytes.Cut(line, []byte(" "))
		name := string(bytes.ToUpper(verb))
		c.srv.countCommand(name)
		if name == "STARTTLS" {
			c.blind = true
		}
	}
}

func (c *trackedConn) appendLine(p []byte) {
	if c.skipBig || c.inData && len(c.line) > 8 {
		// In DATA only a lone "." matters; long lines are just skipped.
		if c.inData {
			c.line = c.line[:0]
			c.skipBig = true
		}
		return
	}
	if len(c.line)+len(p) > maxScanLine {
		c.line, c.skipBig = c.line[:0], true
		return
	}
	c.line = append(c.line, p...)
}

// trackedOf finds the trackedConn under a go-smtp connection (which may have
// been wrapped by STARTTLS).
func trackedOf(nc net.Conn) *trackedConn {
	for range 4 {
		switch c := nc.(type) {
		case *trackedConn:
			return c
		case *tls.Conn:
			nc = c.NetConn()
		default:
			return nil
		}
	}
	return nil
}
