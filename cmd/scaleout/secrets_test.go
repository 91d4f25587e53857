package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A gateway and a Prometheus server that echo the credentials they were
// sent, in a 401 body, an SSE error event, a message long enough to be cut
// in the middle of the token, a /v1/models error and a query error: no
// output of scaleout holds a secret.
func TestEchoedSecretsAreWrittenNowhere(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	const gwToken, promToken = "s3cr3t-gateway-token-1234", "s3cr3t-prometheus-token-5678"
	t.Setenv("SCALEOUT_TEST_GW_TOKEN", gwToken)
	t.Setenv("SCALEOUT_TEST_PROM_TOKEN", promToken)
	var n atomic.Int64
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/v1/models":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "upstream refused %s", auth)
		case "/v1/completions":
			switch n.Add(1) % 3 {
			case 0:
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, "invalid credentials: %s", auth)
			case 1:
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, "%s denied: %s", strings.Repeat("x", 175), auth)
			default:
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprintf(w, "data: {\"error\":{\"message\":\"upstream rejected %s\"}}\n\n", auth)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(gw.Close)
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprintf(w, `{"status":"error","errorType":"execution","error":"not for %s (nor %s)"}`, r.Header.Get("Authorization"), gwToken)
	}))
	t.Cleanup(prom.Close)

	dir := t.TempDir()
	path := writeFile(t, dir, "echo.yaml", `
target:
  url: `+gw.URL+`
  model: m
  headers: {Authorization: 'Bearer ${SCALEOUT_TEST_GW_TOKEN}'}
load: [{duration: 1s, rate: 30/s}]
client_check: {max_send_lag: 2s, max_shortfall: 50%}
observe:
  prometheus: `+prom.URL+`
  token: ${SCALEOUT_TEST_PROM_TOKEN}
  interval: 250ms
  series: {waiting: sum(vllm:num_requests_waiting)}
`)
	out, vr := filepath.Join(dir, "run"), filepath.Join(dir, "results.bin")
	c := newCLI()
	// The fake Prometheus answers every query with an error, so rest can
	// never be told: run from where it is.
	c.run(t, "run", path, "--no-preflight", "--rest-wait", "0", "--out", out, "--vegeta-results", vr)
	r := readReportFile(t, out)
	if r.Load.Errors["http_401"] == 0 || r.Load.Errors["http_403"] == 0 || r.Load.Errors["stream_error"] == 0 {
		t.Fatalf("the gateway's echoes did not all happen: %v\n%s", r.Load.Errors, c.stderr.String())
	}
	pre := newCLI()
	if code := pre.run(t, "check", path); code != exitCannotRun {
		t.Errorf("check: exit %d, want 3\n%s%s", code, pre.stdout.String(), pre.stderr.String())
	}
	if !strings.Contains(pre.stdout.String()+pre.stderr.String(), "upstream refused [REDACTED]") {
		t.Errorf("the preflight does not quote the answer, redacted:\n%s%s", pre.stdout.String(), pre.stderr.String())
	}

	outputs := map[string]string{
		"run stdout": c.stdout.String(), "run stderr": c.stderr.String(),
		"check stdout": pre.stdout.String(), "check stderr": pre.stderr.String(),
	}
	for _, name := range []string{"report.json", "report.html", "timeline.csv", "requests.jsonl"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		outputs[name] = string(b)
	}
	f, err := os.Open(vr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	outputs["vegeta results"] = string(b)
	for name, text := range outputs {
		for _, secret := range []string{gwToken, promToken, gwToken[:12], promToken[:12]} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds %q", name, secret)
			}
		}
	}
	if !strings.Contains(outputs["requests.jsonl"], "[REDACTED]") || !strings.Contains(outputs["report.json"], "[REDACTED]") {
		t.Errorf("the messages are not kept, redacted:\n%s", outputs["report.json"])
	}
}
