package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/smtppool"
)

func reply(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2525},
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	cases := []struct {
		name      string
		cmd       string
		err       error
		permanent bool
		code      int
		desc      string
	}{
		{"550 user unknown", "RCPT", reply(550, smtp.EnhancedCode{5, 1, 1}, "user unknown"), true, 550, "5.1.1 user unknown (SMTP 550)"},
		{"451 at MAIL", "MAIL", reply(451, smtp.EnhancedCode{4, 3, 0}, "try later"), false, 451, "4.3.0 try later (SMTP 451)"},
		{"421 closing", "DATA", reply(421, smtp.EnhancedCode{4, 4, 2}, "bye"), false, 421, "4.4.2 bye (SMTP 421)"},
		{"535 auth", "AUTH", reply(535, smtp.EnhancedCode{5, 7, 8}, "Authentication failed"), true, 535, "5.7.8 Authentication failed (SMTP 535)"},
		{"530 auth required", "MAIL", reply(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required"), true, 530, "5.7.0 Authentication required (SMTP 530)"},
		{"552 on RCPT is 452", "RCPT", reply(552, smtp.EnhancedCode{5, 5, 3}, "too many recipients"), false, 552, "5.5.3 too many recipients (SMTP 552)"},
		{"552 on DATA stays permanent", "DATA", reply(552, smtp.EnhancedCode{5, 3, 4}, "too big"), true, 552, "5.3.4 too big (SMTP 552)"},
		{"no enhanced code", "MAIL", reply(554, smtp.EnhancedCodeNotSet, "go away"), true, 554, "go away (SMTP 554)"},
		{"multi-line reply", "DATA", reply(451, smtp.EnhancedCode{4, 0, 0}, "line one\nline two"), false, 451, "4.0.0 line one line two (SMTP 451)"},
		{"wrapped reply", "MAIL", fmt.Errorf("mail: %w", reply(550, smtp.EnhancedCode{5, 7, 1}, "denied")), true, 550, "5.7.1 denied (SMTP 550)"},
		{"connection refused", "dial", refused, false, 0, "dial tcp 127.0.0.1:2525: connect: connection refused"},
		{"reset", "DATA", fmt.Errorf("write: %w", syscall.ECONNRESET), false, 0, "write: connection reset by peer"},
		{"eof", "RCPT", io.EOF, false, 0, "EOF"},
		{"unexpected eof", "DATA", io.ErrUnexpectedEOF, false, 0, "unexpected EOF"},
		{"dns", "dial", &net.DNSError{Err: "no such host", Name: "mx.invalid", IsNotFound: true}, false, 0, "lookup mx.invalid: no such host"},
		{"deadline", "RCPT", os.ErrDeadlineExceeded, false, 0, "i/o timeout"},
		{"context deadline", "dial", context.DeadlineExceeded, false, 0, "context deadline exceeded"},
		{"cancelled", "DATA", context.Canceled, false, 0, "context canceled"},
		{"pool wait", "connect", smtppool.ErrWaitTimeout, false, 0, "Timeout waiting for SMTP connection"},
		{"unknown CA", "STARTTLS", x509.UnknownAuthorityError{}, true, 0, "x509: certificate signed by unknown authority"},
		{"hostname", "TLS", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mx"}, true, 0, "x509: certificate is not valid for any names, but wanted to match mx"},
		{"plain server on TLS port", "TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, true, 0, "tls: first record does not look like a TLS handshake"},
		{"tls alert", "TLS", tls.AlertError(42), true, 0, "tls: bad certificate"},
		{"auth unsupported", "AUTH", ErrAuthUnsupported, true, 0, "SMTP AUTH not supported by server"},
		{"starttls unsupported", "STARTTLS", ErrStartTLSUnsupported, true, 0, "STARTTLS not supported by server"},
		{"text: wrong version", "", errors.New("SSL routines:wrong_version_number"), true, 0, "SSL routines:wrong_version_number"},
		{"text: authentication failed", "", errors.New("authentication failed for user"), true, 0, "authentication failed for user"},
		{"text: bare 535", "", errors.New("server said 535"), true, 0, "server said 535"},
		{"text: self signed", "", errors.New("self signed certificate in chain"), true, 0, "self signed certificate in chain"},
		{"text: throttled", "", errors.New("Throttling: slow down"), false, 0, "Throttling: slow down"},
		{"text: temporary wins", "", errors.New("451 auth service temporarily unavailable"), false, 0, "451 auth service temporarily unavailable"},
		{"text: try again", "", errors.New("please try again later"), false, 0, "please try again later"},
		{"text: anything else", "", errors.New("something odd"), false, 0, "something odd"},
		{"reply code outside 2xx-5xx falls to text", "DATA", reply(0, smtp.EnhancedCodeNotSet, "auth weirdness"), true, 0, "SMTP error 000: auth weirdness"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := classifyAt(tc.cmd, tc.err)
			if got.Permanent != tc.permanent || got.Code != tc.code || got.Error() != tc.desc || got.Command != tc.cmd {
				t.Errorf("classifyAt(%q, %v) = {perm %v code %d cmd %q %q}, want {perm %v code %d %q}",
					tc.cmd, tc.err, got.Permanent, got.Code, got.Command, got.Error(), tc.permanent, tc.code, tc.desc)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("result does not unwrap to the cause")
			}
		})
	}
}

func TestClassifyKeepsClassifiedErrors(t *testing.T) {
	t.Parallel()
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
	orig := &Error{Permanent: true, Code: 550, Enhanced: "5.1.1", Command: "RCPT", Err: reply(550, smtp.EnhancedCode{5, 1, 1}, "x")}
	if got := Classify(fmt.Errorf("attempt: %w", orig)); got != orig {
		t.Errorf("Classify re-classified an *Error: %+v", got)
	}
	if got := Classify(reply(450, smtp.EnhancedCode{4, 2, 0}, "busy")); got.Permanent || got.Enhanced != "4.2.0" {
		t.Errorf("Classify(450) = %+v", got)
	}
}

func TestReplyClass(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  *Error
		want string
	}{
		{"550", &Error{Code: 550, Err: reply(550, smtp.EnhancedCode{5, 1, 1}, "x")}, "5xx"},
		{"451", &Error{Code: 451, Err: reply(451, smtp.EnhancedCode{4, 3, 0}, "x")}, "4xx"},
		{"deadline", &Error{Err: fmt.Errorf("read: %w", os.ErrDeadlineExceeded)}, "timeout"},
		{"context deadline", &Error{Err: context.DeadlineExceeded}, "timeout"},
		{"record header", &Error{Err: tls.RecordHeaderError{Msg: "not TLS"}}, "tls"},
		{"verification", &Error{Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, "tls"},
		{"unknown CA", &Error{Err: x509.UnknownAuthorityError{}}, "tls"},
		{"hostname", &Error{Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mx"}}, "tls"},
		{"alert stays network", &Error{Err: tls.AlertError(42)}, "network"},
		{"refused", &Error{Err: syscall.ECONNREFUSED}, "network"},
		{"no cause", &Error{}, "network"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.ReplyClass(); got != tc.want {
				t.Errorf("ReplyClass() = %q, want %q", got, tc.want)
			}
		})
	}
}
