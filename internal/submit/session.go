package submit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/api"
	"github.com/mailproxy/mailproxy/internal/rawmsg"
	"github.com/mailproxy/mailproxy/internal/store"
)

// storeTimeout bounds one store call of a session (login, tenant check, enqueue).
const storeTimeout = 30 * time.Second

// Replies. Codes follow RFC 5321/6409 and RFC 3463's enhanced codes.
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errSuspended    = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Tenant suspended, try again later"}
	errOverloaded   = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Store overloaded, try again later"}
	errTemporary    = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
	errAuthTemp     = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
)

type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.s.metrics.sessions.Inc()
	return &session{s: b.s, remote: c.Conn().RemoteAddr().String()}, nil
}

// session is one SMTP connection's state.
type session struct {
	s      *Server
	remote string
	login  *api.Login
	from   string
	rcpts  []string
	closed bool
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return ss.authFailed()
			}
			return ss.authenticate(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: ss.authenticate}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) authenticate(username, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	login, err := ss.s.opts.Submitter.Login(ctx, username, password)
	switch {
	case errors.Is(err, api.ErrLoginFailed):
		ss.s.log.Info("smtp submission: authentication failed", "remote", ss.remote, "username", username)
		return ss.authFailed()
	case err != nil:
		ss.s.log.Warn("smtp submission: authentication could not be checked", "remote", ss.remote, "err", err)
		ss.s.metrics.refused.WithLabelValues(refusedStore).Inc()
		return errAuthTemp
	}
	ss.login = &login
	return nil
}

func (ss *session) authFailed() error {
	ss.s.metrics.refused.WithLabelValues(refusedAuth).Inc()
	return smtp.ErrAuthFailed
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.login == nil {
		ss.s.metrics.refused.WithLabelValues(refusedNoAuth).Inc()
		return errAuthRequired
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := ss.s.opts.Submitter.Accepting(ctx, ss.login.TenantID); err != nil {
		return ss.storeRefusal(err)
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.login == nil {
		ss.s.metrics.refused.WithLabelValues(refusedNoAuth).Inc()
		return errAuthRequired
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) (err error) {
	defer func() {
		if v := recover(); v != nil {
			ss.s.panicked("data", v)
			err = errTemporary
		}
	}()
	if ss.login == nil {
		ss.s.metrics.refused.WithLabelValues(refusedNoAuth).Inc()
		return errAuthRequired
	}
	data, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			ss.s.metrics.refused.WithLabelValues(refusedTooLarge).Inc()
		}
		return err
	}
	rm, err := rawmsg.Parse(data)
	if err != nil {
		return ss.invalid("invalid message: " + err.Error())
	}
	ctl := rm.TakeControl()
	sub := api.Submission{MailFrom: ss.from, Recipients: ss.rcpts, Raw: rm.Bytes(), Control: ctl}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	res, err := ss.s.opts.Submitter.Submit(ctx, *ss.login, sub)
	if err != nil {
		return ss.storeRefusal(err)
	}
	if res.Reason != "" {
		return ss.invalid(res.Reason)
	}
	ss.s.metrics.accepted.Inc()
	if ss.s.opts.LogActivity {
		ss.s.log.Info("smtp submission queued", "msg_id", res.ID, "tenant_id", ss.login.TenantID,
			"account_id", ss.login.AccountID, "recipients", len(ss.rcpts), "bytes", len(data), "duplicate", res.Duplicate)
	}
	text := "queued as " + res.ID
	if res.Duplicate {
		text = "already queued as " + res.ID
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: text}
}

// invalid refuses the message for good, naming the reason.
func (ss *session) invalid(reason string) error {
	ss.s.metrics.refused.WithLabelValues(refusedInvalid).Inc()
	if ss.s.opts.LogActivity {
		ss.s.log.Info("smtp submission refused", "tenant_id", ss.login.TenantID, "account_id", ss.login.AccountID, "reason", reason)
	}
	return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: oneLine(reason)}
}

// storeRefusal maps a store-side problem to a temporary reply.
func (ss *session) storeRefusal(err error) error {
	switch {
	case errors.Is(err, api.ErrTenantSuspended):
		ss.s.metrics.refused.WithLabelValues(refusedSuspended).Inc()
		return errSuspended
	case errors.Is(err, store.ErrOverloaded):
		ss.s.metrics.refused.WithLabelValues(refusedStore).Inc()
		return errOverloaded
	}
	ss.s.metrics.refused.WithLabelValues(refusedStore).Inc()
	ss.s.log.Warn("smtp submission: store failure", "tenant_id", ss.login.TenantID, "err", err)
	return errTemporary
}

func (ss *session) Reset() {
	ss.from, ss.rcpts = "", nil
}

func (ss *session) Logout() error {
	if !ss.closed {
		ss.closed = true
		ss.s.metrics.sessions.Dec()
	}
	return nil
}

func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// loginServer is the server side of AUTH LOGIN (draft-murchison-sasl-login),
// which go-sasl provides only as a client: ask for the username, then the
// password, each as a base64 challenge.
type loginServer struct {
	check    func(username, password string) error
	username string
	step     int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(response) > 0 { // initial response: the username
			l.username, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, fmt.Errorf("unexpected LOGIN response")
}
