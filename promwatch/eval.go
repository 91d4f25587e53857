package promwatch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/promql"
)

// DefaultTimeout bounds one sample (Watcher.Timeout 0) and one Eval whose
// context carries no deadline.
const DefaultTimeout = 10 * time.Second

// Element is one series of an instant vector.
type Element struct {
	Labels map[string]string
	V      float64
}

// Result is one query's answer at one instant.
type Result struct {
	Vector []Element
	Err    error
	// Warnings are non-fatal notes on an answer that holds (Prometheus
	// warnings, scrape-mode hints such as a matcher on a label no page has).
	// They never turn a value into a gap.
	Warnings []string
}

// Evaluator evaluates PromQL at one instant.
type Evaluator interface {
	// Eval evaluates every query at the same instant `at`; results align with queries (len equal).
	Eval(ctx context.Context, at time.Time, queries []string) []Result
	String() string // "prometheus http://host:9090", "scrape of 2 pages" — never containing a token
}

// ToValue turns one Result into a measure.Value: exactly one element → its
// number; none → gap "no series"; several → gap "3 series (aggregate with
// sum(…) or max(…))"; an error → a gap with a short reason (see Reason).
// A NaN or infinite value is a gap too ("NaN", "+Inf", "-Inf"): it is not a
// number a timeline can plot or JSON can carry.
func ToValue(r Result) measure.Value {
	if r.Err != nil {
		return measure.Value{Gap: Reason(r.Err)}
	}
	switch n := len(r.Vector); n {
	case 0:
		return measure.Value{Gap: "no series"}
	case 1:
		v := r.Vector[0].V
		switch {
		case math.IsNaN(v):
			return measure.Value{Gap: "NaN"}
		case math.IsInf(v, 1):
			return measure.Value{Gap: "+Inf"}
		case math.IsInf(v, -1):
			return measure.Value{Gap: "-Inf"}
		}
		return measure.Value{V: v}
	default:
		return measure.Value{Gap: fmt.Sprintf("%d series (aggregate with sum(…) or max(…))", n)}
	}
}

// SourceError is a failure to read where samples come from: the Prometheus
// server or a /metrics page. It never holds a credential.
type SourceError struct {
	Source string // what was read: "prometheus http://host:9090", "scrape http://host:8000/metrics"
	Where  string // for a page, its instance (host:port); "" for Prometheus
	Reason string // short and human: "connection refused", "HTTP 503", "timeout"
	More   int    // how many other pages failed in the same evaluation
	Err    error  // the underlying error, for errors.Is/As
}

func (e *SourceError) Error() string {
	s := e.Source + ": " + e.Reason
	if e.More > 0 {
		s += fmt.Sprintf(" (and %d more %s)", e.More, plural(e.More, "page", "pages"))
	}
	return s
}

func (e *SourceError) Unwrap() error { return e.Err }

// gap is the reason shown in a timeline cell.
func (e *SourceError) gap() string {
	switch {
	case e.Where == "":
		return e.Reason
	case e.More > 0:
		return fmt.Sprintf("%s: %s (+%d more)", e.Where, e.Reason, e.More)
	default:
		return e.Where + ": " + e.Reason
	}
}

// Reason is the short human reason an error leaves as a gap: "connection
// refused", "timeout", "HTTP 503", "HTTP 401 (check the token)",
// "bad query: …". Errors it does not know keep their own (shortened) text.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var se *SourceError
	if errors.As(err, &se) {
		return se.gap()
	}
	var qe *promql.Error
	if errors.As(err, &qe) {
		return "bad query: " + qe.Short()
	}
	return ShortError(err)
}

// maxReason caps the length of a reason taken from someone else's message.
const maxReason = 120

// ShortError shortens a transport error (net, net/url, TLS, context) to what
// a person needs: "connection refused", "timeout", "no such host x".
// Anything it does not recognise keeps its message, without the URL that
// net/url puts in front, cut to a readable length.
func ShortError(err error) string {
	if err == nil {
		return ""
	}
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var badCert x509.CertificateInvalidError
	var plainHTTP tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return "no such host " + dnsErr.Name
		case dnsErr.IsTimeout:
			return "DNS timeout"
		}
		return "DNS: " + dnsErr.Err
	case errors.As(err, &unknownCA):
		return "TLS: certificate signed by an unknown authority"
	case errors.As(err, &badHost):
		return "TLS: certificate not valid for this host"
	case errors.As(err, &badCert):
		return "TLS: invalid certificate"
	case errors.As(err, &plainHTTP):
		return "TLS: the server speaks plain HTTP (use http://)"
	case errors.Is(err, http.ErrSchemeMismatch):
		return "the server speaks plain HTTP (use http://)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	}
	msg := err.Error()
	var urlErr *url.Error
	if errors.As(err, &urlErr) && urlErr.Err != nil {
		msg = urlErr.Err.Error()
	}
	return clip(msg)
}

// httpReason names an HTTP status the way a gap shows it.
func httpReason(code int) string {
	switch code {
	case 401, 403:
		return fmt.Sprintf("HTTP %d (check the token)", code)
	case 404:
		return "HTTP 404 (check the address)"
	}
	return fmt.Sprintf("HTTP %d", code)
}

// clip cuts s to maxReason characters on one line.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxReason {
		return string(r[:maxReason-1]) + "…"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// secret is a credential. It prints as [REDACTED] wherever fmt can call its
// methods; structs keep it out of their top-level fields (fmt does not call
// methods on unexported fields).
type secret string

func (secret) String() string   { return "[REDACTED]" }
func (secret) GoString() string { return `"[REDACTED]"` }

// scrub removes the secret from a message taken from elsewhere (a server may
// echo a header back in its error text).
func (s secret) scrub(msg string) string {
	if s == "" {
		return msg
	}
	return strings.ReplaceAll(msg, string(s), "[REDACTED]")
}

// redactedURL prints u without userinfo password or query string, either of
// which may carry a credential.
func redactedURL(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.RawFragment = ""
	return c.Redacted()
}

// withDefaultDeadline bounds ctx by DefaultTimeout when it has no deadline
// (and replaces a nil ctx, which client_golang would panic on).
func withDefaultDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}
