// Package weburl reads the http(s) base URLs a scenario names (a gateway,
// a Prometheus server, /metrics pages) and prints them without what may be
// a credential.
package weburl

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Base parses an absolute http(s) URL with a host and drops a trailing
// slash and /v1 from its path: the API path is appended to it. Its error
// shows the URL redacted.
func Base(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL (try %s)", Redact(raw), hint(raw))
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v1")
	u.RawPath = ""
	return u, nil
}

// hint is the http URL the user probably meant by raw: the same host,
// port and path with http:// in front (another scheme, or a mistyped
// http, dropped), redacted as the URL itself is.
func hint(raw string) string {
	rest := Redact(strings.TrimSpace(raw))
	if m := schemeLike.FindStringIndex(rest); m != nil {
		rest = rest[m[1]:]
	}
	if rest == "" {
		return "http://HOST:PORT"
	}
	return "http://" + rest
}

// schemeLike is a scheme at the start of a URL, or http(s) mistyped
// without its colon or a slash.
var schemeLike = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://|[hH][tT][tT][pP][sS]?:?/+)`)

// Redact removes what may be a credential from a URL so it can be printed
// or stored: a parsed URL's password and query string (api_key=…), and in
// text that does not parse, everything before an @.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		if u.RawQuery != "" {
			u.RawQuery = "…"
		}
		return u.Redacted()
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		start := 0
		if i := strings.Index(raw, "//"); i >= 0 && i < at {
			start = i + 2
		}
		return raw[:start] + "…" + raw[at:]
	}
	return raw
}
