package testsmtp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// errDropped is returned by a hook after it closed the connection; go-smtp's
// answer then goes nowhere.
var errDropped = errors.New("testsmtp: connection dropped by fault")

var errAuthRequired = &smtp.SMTPError{
	Code:         530,
	EnhancedCode: smtp.EnhancedCode{5, 7, 0},
	Message:      "Authentication required",
}

// session is one SMTP session (go-smtp makes a new one per EHLO after
// STARTTLS).
type session struct {
	srv      *Server
	conn     *smtp.Conn
	tc       *trackedConn
	authUser string
	from     string
	utf8     bool
	rcpts    []string
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	tc := trackedOf(c.Conn())
	if tc == nil {
		return nil, errors.New("testsmtp: untracked connection")
	}
	return &session{srv: s, conn: c, tc: tc}, nil
}

func (ss *session) isTLS() bool {
	if ss.tc.tls {
		return true
	}
	_, ok := ss.conn.TLSConnectionState()
	return ok
}

// apply runs the fault that fires for this occurrence of stage, if any. A
// nil result means "proceed normally".
func (ss *session) apply(stage Stage, rcpt string) error {
	f, ok := ss.srv.faults.match(stage, rcpt)
	if !ok {
		return nil
	}
	return ss.act(f)
}

func (ss *session) act(f Fault) error {
	ss.tc.sleep(f.Delay, f.Release)
	switch f.Action {
	case ActionDelay:
		return nil
	case ActionDrop:
		_ = ss.tc.Close()
		return errDropped
	case ActionStall:
		<-ss.tc.closed
		return errDropped
	default:
		e := f.smtpError()
		if e.Code == 421 {
			// Answer, then hang up: go-smtp would keep the session open.
			if _, err := fmt.Fprintf(ss.conn.Conn(), "421 %s\r\n", replyText(f, e.Message)); err != nil {
				ss.srv.log.Debug("testsmtp: 421 reply", "err", err)
			}
			_ = ss.tc.Close()
			return errDropped
		}
		return e
	}
}

func (ss *session) AuthMechanisms() []string {
	if len(ss.srv.opts.Users) == 0 {
		return nil
	}
	return ss.srv.mechanisms
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if err := ss.apply(StageAuth, ""); err != nil {
			return err
		}
		want, ok := ss.srv.opts.Users[user]
		if !ok || want != pass {
			return smtp.ErrAuthFailed
		}
		ss.authUser = user
		return nil
	}
	if !slices.Contains(ss.srv.mechanisms, mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return smtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{authenticate: check}, nil
	default:
		return nil, smtp.ErrAuthUnknownMechanism
	}
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.srv.opts.AuthRequired && ss.authUser == "" {
		return errAuthRequired
	}
	if err := ss.apply(StageMail, ""); err != nil {
		return err
	}
	ss.from = from
	ss.utf8 = opts != nil && opts.UTF8
	ss.rcpts = nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.apply(StageRcpt, to); err != nil {
		return err
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	f, faulty := ss.srv.faults.match(StageData, "")
	if faulty && f.Action == ActionDrop {
		// Read part of the body, then vanish mid-transfer.
		_, _ = io.CopyN(io.Discard, r, int64(max(f.AfterBytes, 1)))
		return ss.act(f)
	}
	var (
		data []byte
		n    int64
		err  error
	)
	if ss.srv.opts.Discard && !ss.srv.opts.PassData {
		n, err = io.Copy(io.Discard, r)
	} else {
		var buf bytes.Buffer
		n, err = io.Copy(&buf, r)
		data = buf.Bytes()
	}
	if err != nil {
		return err // too large, or the connection broke
	}
	if faulty {
		if err := ss.act(f); err != nil {
			return err
		}
	}
	ss.srv.record(Received{
		ConnID:   ss.tc.id,
		AuthUser: ss.authUser,
		TLS:      ss.isTLS(),
		UTF8:     ss.utf8,
		From:     ss.from,
		Rcpts:    slices.Clone(ss.rcpts),
		Data:     data,
		At:       time.Now(),
	}, n)
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.utf8, ss.rcpts = "", false, nil
}

func (ss *session) Logout() error { return nil }

// loginServer is the server side of the obsolete but common LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl only implements as a client.
type loginServer struct {
	authenticate func(user, pass string) error
	user         string
	step         int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if response == nil { // no initial response: ask for the user name
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.authenticate(strings.TrimSpace(l.user), string(response))
	default:
		return nil, false, errors.New("testsmtp: unexpected LOGIN response")
	}
}
