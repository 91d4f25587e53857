package redact

import "testing"

func TestText(t *testing.T) {
	s := New("s3cr3t-token", "Bearer s3cr3t-token", "abc", "")
	for in, want := range map[string]string{
		"invalid credentials: Bearer s3cr3t-token":   "invalid credentials: [REDACTED]",
		"token s3cr3t-token and again s3cr3t-token.": "token [REDACTED] and again [REDACTED].",
		"cut short: Bearer s3cr3t-t…":                "cut short: [REDACTED]…",
		"cut short without a mark: s3cr":             "cut short without a mark: [REDACTED]",
		"abc is too short to look for":               "abc is too short to look for",
		"nothing here":                               "nothing here",
		"ends in two letters of it: s3":              "ends in two letters of it: s3",
		"":                                           "",
	} {
		if got := s.Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
	var none *Secrets
	if got := none.Text("Bearer s3cr3t-token"); got != "Bearer s3cr3t-token" {
		t.Errorf("nil: %q", got)
	}
	if got := New("ab").Text("ab"); got != "ab" {
		t.Errorf("short only: %q", got)
	}
}
