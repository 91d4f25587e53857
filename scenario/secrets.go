package scenario

import (
	"encoding/base64"
	"net/url"
	"strings"
)

// secretField tells whether a field holds a secret: a request header's
// value or the observation's token.
func secretField(field string) bool {
	return strings.HasPrefix(field, "target.headers.") || field == "observe.token"
}

// Secrets are the values a run must never write or print: every header
// value (and the credentials after its scheme: "Bearer <token>", and a
// Basic pair decoded), the observation's token, the passwords and query
// values of the URLs, and whatever ${NAME} put into those secret fields.
func (s *Scenario) Secrets() []string {
	out := append([]string(nil), s.envSecrets...)
	for _, h := range s.Target.Headers {
		out = append(out, h.Value)
		scheme, cred, ok := strings.Cut(strings.TrimSpace(h.Value), " ")
		if !ok {
			continue
		}
		cred = strings.TrimSpace(cred)
		out = append(out, cred)
		if strings.EqualFold(scheme, "basic") {
			if b, err := base64.StdEncoding.DecodeString(cred); err == nil {
				pair := string(b)
				out = append(out, pair)
				if _, pw, ok := strings.Cut(pair, ":"); ok {
					out = append(out, pw)
				}
			}
		}
	}
	out = append(out, s.Observe.Token)
	for _, raw := range append([]string{s.Target.URL, s.Observe.Prometheus}, s.Observe.Scrape...) {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		if pw, ok := u.User.Password(); ok {
			out = append(out, pw, url.QueryEscape(pw))
		}
		for _, vs := range u.Query() {
			out = append(out, vs...)
		}
	}
	return out
}
