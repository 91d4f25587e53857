// Package redact removes a run's secret values (header values, tokens, URL
// passwords) from text that came from elsewhere: a server that echoes the
// Authorization header in its error, say.
package redact

import (
	"cmp"
	"slices"
	"strings"
)

// Mark is what a secret becomes.
const Mark = "[REDACTED]"

// MinLen is the shortest value looked for: a shorter one would match
// ordinary text everywhere (and is no credential).
const MinLen = 4

// minTail is the shortest start of a secret removed from the end of a text
// that may have been cut in the middle of it.
const minTail = 3

// Secrets removes known values from text. The zero value and nil remove
// nothing.
type Secrets struct {
	values []string // longest first
	r      *strings.Replacer
}

// New removes values (those shorter than MinLen are skipped, duplicates
// merged).
func New(values ...string) *Secrets {
	var vs []string
	for _, v := range values {
		if len(v) >= MinLen && !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return &Secrets{}
	}
	// Longest first: where two secrets start at the same place the longer
	// one is replaced whole.
	slices.SortStableFunc(vs, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	pairs := make([]string, 0, 2*len(vs))
	for _, v := range vs {
		pairs = append(pairs, v, Mark)
	}
	return &Secrets{values: vs, r: strings.NewReplacer(pairs...)}
}

// Text returns s without any secret. Messages are often cut short (and
// may end in "…"), so the start of a secret at the very end goes too.
func (s *Secrets) Text(text string) string {
	if s == nil || s.r == nil || text == "" {
		return text
	}
	text = s.r.Replace(text)
	body, cut := strings.CutSuffix(text, "…")
	for _, v := range s.values {
		for n := len(v) - 1; n >= minTail; n-- {
			if strings.HasSuffix(body, v[:n]) {
				text = body[:len(body)-n] + Mark
				if cut {
					text += "…"
				}
				return text
			}
		}
	}
	return text
}
