package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var epoch = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// testConfig is a small fleet: no autoscaler unless a test un-pauses it.
func testConfig() Config {
	c := DefaultConfig()
	c.Paused = true
	c.MaxModelLen = 256
	c.BatchSlowdown = 0
	c.PrefillPerToken = 0
	return c
}

// harness is a fleet on a fake clock behind a loopback test server, with
// Run going when asked for.
type harness struct {
	t   *testing.T
	f   *Fleet
	clk *FakeClock
	srv *httptest.Server
}

func newHarness(t *testing.T, cfg Config, run bool) *harness {
	t.Helper()
	clk := NewFakeClock(epoch)
	f, err := New(cfg, clk)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return serveHarness(t, f, clk, run)
}

// serveHarness serves f, made on clk, for the test, with Run going when
// asked for.
func serveHarness(t *testing.T, f *Fleet, clk *FakeClock, run bool) *harness {
	t.Helper()
	h := &harness{t: t, f: f, clk: clk, srv: httptest.NewServer(f.Handler())}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if run {
		go func() {
			defer close(done)
			if err := f.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
	} else {
		close(done)
	}
	t.Cleanup(func() {
		cancel()
		<-done
		h.srv.CloseClientConnections()
		h.srv.Close()
	})
	return h
}

// waitFor blocks until cond holds on the fleet's state, re-checking at each
// state change; it fails the test after a real-time deadline.
func waitFor(t *testing.T, f *Fleet, what string, cond func(State) bool) State {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		s := f.stateLocked()
		ch := f.changedLocked()
		f.mu.Unlock()
		if cond(s) {
			return s
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; state %+v", what, s)
		}
	}
}

// post sends body to path and returns the response (the caller closes it).
func (h *harness) post(ctx context.Context, path, body string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

// async sends a request in the background; the response arrives on the
// returned channel with its body read whole.
type result struct {
	status int
	body   string
	err    error
}

func (h *harness) async(path, body string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		req, err := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(body))
		if err != nil {
			ch <- result{err: err}
			return
		}
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	return ch
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.Split(body, "\n\n") {
		if ev == "" {
			continue
		}
		if !strings.HasPrefix(ev, "data: ") || strings.Contains(ev, "\n") {
			t.Fatalf("not an SSE data event: %q", ev)
		}
		out = append(out, strings.TrimPrefix(ev, "data: "))
	}
	return out
}

// eventReader reads SSE events one by one from a live stream.
type eventReader struct {
	r *bufio.Reader
}

func (e *eventReader) next() (string, error) {
	for {
		line, err := e.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			continue
		}
		return strings.TrimPrefix(line, "data: "), nil
	}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// shape is a JSON value with its values erased: the keys of every object
// and the kind of every value.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			m[k] = shape(e)
		}
		return m
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		return []any{shape(x[0])}
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return "?"
}

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, s)
	}
	return v
}
