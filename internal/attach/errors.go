package attach

import (
	"fmt"
	"strconv"
)

// Values of the result label of gmp_attachment_fetches_total.
const (
	resultOK           = "ok"
	resultCached       = "cached"        // served from the cache or a concurrent fetch
	resultTimeout      = "timeout"       // fetch timed out
	resultNetworkError = "network_error" // connect, DNS, reading the body
	resultHTTPError    = "http_error"    // non-2xx status
	resultRejected     = "rejected"      // the content or the request was refused (size, MD5, policy, ...)
	resultCanceled     = "canceled"      // the caller gave up
)

// Error is why one attachment could not be fetched. Temporary errors are
// retried on the message's schedule; the others fail the message at once.
type Error struct {
	Filename  string
	Reason    string
	Temporary bool

	result string // metrics label
	cause  error  // for errors.Is/As; never shown (it may carry URLs)
}

func (e *Error) Error() string {
	return "Attachment fetch failed for " + e.Filename + ": " + e.Reason
}

// Unwrap returns the underlying cause, e.g. context.Canceled.
func (e *Error) Unwrap() error { return e.cause }

func permanent(reason, result string) *Error {
	return &Error{Reason: reason, result: result}
}

func temporary(reason, result string, cause error) *Error {
	return &Error{Reason: reason, Temporary: true, result: result, cause: cause}
}

const mib = 1 << 20

// sizeError is the contract's size message; size is from Content-Length or
// the bytes read, limit in bytes.
func sizeError(name string, size, limit int64) *Error {
	return permanent(fmt.Sprintf("Attachment '%s' (%.1f MB) exceeds limit (%s MB)", name, float64(size)/mib, formatMB(limit)), resultRejected)
}

func formatMB(bytes int64) string {
	return strconv.FormatFloat(float64(bytes)/mib, 'f', -1, 64)
}

func httpStatusError(code int) *Error {
	reason := "HTTP " + strconv.Itoa(code)
	if code >= 500 || code == 408 || code == 429 {
		return temporary(reason, resultHTTPError, nil)
	}
	return permanent(reason, resultHTTPError)
}
