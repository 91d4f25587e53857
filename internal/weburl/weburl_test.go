package weburl

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"http://u:pw@gw:8080/v1":        "http://u:xxxxx@gw:8080/v1",
		"http://gw/v1?api_key=s3cr3t":   "http://gw/v1?…",
		"http//u:pw@gw":                 "http//…@gw",
		"http://gw:8080/v1/completions": "http://gw:8080/v1/completions",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBase(t *testing.T) {
	for in, want := range map[string]string{
		"http://gw:8080/v1/": "http://gw:8080",
		"https://gw/api/v1":  "https://gw/api",
		"http://gw:8080":     "http://gw:8080",
	} {
		u, err := Base(in)
		if err != nil || u.String() != want {
			t.Errorf("Base(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	if _, err := Base("ftp://u:pw@host"); err == nil || err.Error() != `"ftp://u:xxxxx@host" is not an http(s) URL (try http://u:xxxxx@host)` {
		t.Errorf("ftp: %v", err)
	}
}

// The hint is what the user typed, with http:// in front: the same host
// and port, never a made-up one.
func TestBaseHintFollowsTheInput(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:9090":        "http://localhost:9090",
		"127.0.0.1:9090":        "http://127.0.0.1:9090",
		"prometheus.mon:9090/x": "http://prometheus.mon:9090/x",
		"tcp://gw:8000":         "http://gw:8000",
		"http//u:pw@gw":         "http://…@gw",
		"http:/gw:8000":         "http://gw:8000",
		"":                      "http://HOST:PORT",
	} {
		_, err := Base(in)
		if err == nil || !strings.HasSuffix(err.Error(), "(try "+want+")") {
			t.Errorf("Base(%q): %v; want the hint %s", in, err, want)
		}
	}
}
