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
	"strings"
	"syscall"

	"github.com/emersion/go-smtp"

	"github.com/mailproxy/mailproxy/internal/netguard"
	"github.com/mailproxy/mailproxy/internal/smtppool"
)

// Error is the outcome of a failed attempt: it alone decides retry or fail.
type Error struct {
	Permanent bool
	Code      int    // SMTP reply code (451, 550, ...); 0 when no reply was involved
	Enhanced  string // "4.3.0"; "" when the server sent none
	Command   string // "dial", "TLS", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "build", "connect"
	Err       error
}

// Error is the contract's description (delivery.md §7): "<enhanced> <text>
// (SMTP <code>)" for a reply, else the cause's own text.
func (e *Error) Error() string {
	if e.Code == 0 {
		if e.Err == nil {
			return "delivery failed"
		}
		return e.Err.Error()
	}
	text := replyText(e.Err)
	if e.Enhanced != "" {
		return fmt.Sprintf("%s %s (SMTP %d)", e.Enhanced, text, e.Code)
	}
	return fmt.Sprintf("%s (SMTP %d)", text, e.Code)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errors for servers lacking what the account requires; all permanent.
var (
	ErrAuthUnsupported     = errors.New("SMTP AUTH not supported by server")
	ErrStartTLSUnsupported = errors.New("STARTTLS not supported by server")
	ErrSMTPUTF8Unsupported = errors.New("SMTPUTF8 not supported by server (non-ASCII address)")
	// ErrClearAuthRefused: use_tls unset, the server offers no STARTTLS,
	// and the account did not opt out of verification: the credentials are
	// not sent in clear. Permanent: the server's offer will not change on
	// a retry, while the account's settings need a person to change them.
	ErrClearAuthRefused = errors.New("credentials not sent in clear: the server offers no STARTTLS " +
		`(set "use_tls": true for a TLS server, or "tls_verify": false to allow AUTH without TLS)`)
)

// Public is the description a tenant sees (GET /messages, delivery
// reports): the server's reply when there is one, our own reasons as they
// are, but a failure to connect only as "Connection failed" with its kind,
// never the dial error, which names the addresses it tried. The full error
// (Error) is for the server's log.
func (e *Error) Public() string {
	if e.Code != 0 || e.Err == nil {
		return e.Error()
	}
	switch {
	case errors.Is(e.Err, smtppool.ErrWaitTimeout):
		return e.Error()
	case isRefusedAddress(e.Err):
		return "Connection failed: address not allowed"
	case isTLSFailure(e.Err):
		return "Connection failed: TLS handshake or certificate verification failed"
	case isTimeout(e.Err):
		return "Connection failed: timeout"
	case isNetwork(e.Err):
		return "Connection failed"
	}
	return e.Error()
}

func isRefusedAddress(err error) bool {
	_, ok := netguard.Refused(err)
	return ok
}

// Classify turns any error from a delivery attempt into an *Error,
// following delivery.md §7: error kind first, then reply code, then text.
// An *Error in the chain is returned as is.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	return classifyAt("", err)
}

// classifyAt classifies err raised by command cmd.
func classifyAt(cmd string, err error) *Error {
	if err == nil {
		return nil
	}
	if de, ok := errors.AsType[*Error](err); ok {
		if de.Command == "" && cmd != "" {
			cp := *de
			cp.Command = cmd
			return &cp
		}
		return de
	}
	e := &Error{Command: cmd, Err: err}
	if se, ok := errors.AsType[*smtp.SMTPError](err); ok && se.Code >= 200 && se.Code <= 599 {
		e.Code = se.Code
		e.Enhanced = enhancedString(se.EnhancedCode)
		switch se.Code / 100 {
		case 5:
			// RFC 5321 §4.5.3.1.10: 552 on RCPT means too many recipients,
			// to be treated as the temporary 452.
			e.Permanent = !(cmd == "RCPT" && se.Code == 552)
		case 4:
			e.Permanent = false
		default:
			e.Permanent = permanentText(se.Message)
		}
		return e
	}
	switch {
	case errors.Is(err, ErrAuthUnsupported), errors.Is(err, ErrStartTLSUnsupported),
		errors.Is(err, ErrSMTPUTF8Unsupported), errors.Is(err, errBuild), errors.Is(err, ErrClearAuthRefused),
		isRefusedAddress(err):
		e.Permanent = true
	case errors.Is(err, smtppool.ErrWaitTimeout):
		e.Permanent = false
	case isTLSFailure(err):
		e.Permanent = true
	case isTimeout(err), isNetwork(err):
		e.Permanent = false
	default:
		e.Permanent = permanentText(err.Error())
	}
	return e
}

// ReplyClass is the failure's class as gmp_smtp_replies_total labels it:
// "5xx" or "4xx" for a reply, else "timeout", "tls" or "network".
func (e *Error) ReplyClass() string {
	switch {
	case e.Code >= 500:
		return "5xx"
	case e.Code >= 400:
		return "4xx"
	case isTimeout(e.Err):
		return "timeout"
	case isTLSHandshake(e.Err):
		return "tls"
	default:
		return "network"
	}
}

// isTLSFailure: the peer's certificate or TLS itself failed, which a retry
// will not fix (a plain server on a TLS port answers with a non-TLS record).
func isTLSFailure(err error) bool {
	if isTLSHandshake(err) {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return true
	}
	return false
}

// isTLSHandshake: a non-TLS record or a certificate that did not verify.
// It is the narrower set the "tls" reply class has always had: an alert or
// an invalid certificate outside verification counts as "network" there.
func isTLSHandshake(err error) bool {
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	return false
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

func isNetwork(err error) bool {
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return true
	}
	for _, target := range []error{
		io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, context.Canceled,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ENETUNREACH, syscall.EHOSTUNREACH,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// permanentText applies the text heuristics for errors without a reply code
// (delivery.md §7): a temporary sign wins over a permanent one, and no sign
// at all is temporary.
func permanentText(s string) bool {
	s = strings.ToLower(s)
	for _, w := range [...]string{"421", "450", "451", "452", "timeout", "connection refused",
		"connection reset", "temporarily unavailable", "try again", "throttl"} {
		if strings.Contains(s, w) {
			return false
		}
	}
	for _, w := range [...]string{"wrong_version_number", "certificate verify failed", "ssl handshake",
		"certificate_unknown", "unknown_ca", "certificate has expired", "self signed certificate",
		"authentication failed", "auth", "535", "534", "530"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func enhancedString(c smtp.EnhancedCode) string {
	if c == smtp.EnhancedCodeNotSet || c == smtp.NoEnhancedCode {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

// replyText is the server's text, on one line.
func replyText(err error) string {
	if se, ok := errors.AsType[*smtp.SMTPError](err); ok {
		return strings.ReplaceAll(se.Message, "\n", " ")
	}
	if err == nil {
		return ""
	}
	return err.Error()
}
