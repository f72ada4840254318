// Package client is the Go client of mailproxy's REST API (the legacy
// /commands/* surface and its companions), for applications that hand
// messages to mailproxy and for the mail-proxy CLI.
//
// A Client wraps one base URL and one token (the admin token or a tenant API
// key, sent as X-API-Token). Every call takes a context. Failures come in two
// kinds that callers can tell apart:
//
//  1. the service answered with a non-2xx status: *APIError, carrying the
//     status and the decoded "detail" of the body;
//  2. the service could not be reached (connection refused, reset, timeout):
//     an error for which errors.Is(err, ErrUnreachable) holds (*UnreachableError).
//
// The package also serves the receiving side of client sync: SyncRequest and
// ReportItem decode the delivery-report POST the proxy sends, SyncResponse is
// the answer, and VerifyWebhook checks its Standard Webhooks signature:
//
//  1. read webhook-id, webhook-timestamp and webhook-signature;
//  2. refuse a timestamp further than the tolerance from now;
//  3. key = base64-decode(secret without its "whsec_" prefix);
//  4. expected = base64(HMAC-SHA256(key, id + "." + timestamp + "." + body));
//  5. accept when any "v1,<signature>" in the space-separated list equals it
//     (constant-time comparison).
package client
