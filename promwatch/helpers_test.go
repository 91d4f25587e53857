package promwatch

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor bounds every wait in these tests: a condition, not a sleep.
const waitFor = 10 * time.Second

// fixture reads one of the captured pages the simulator's tests keep
// (sim/testdata), so the repository holds each capture once.
func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("../sim/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// refusedURL is an http URL at which nothing listens.
func refusedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// hostOf is the host:port of a URL such as an httptest server's.
func hostOf(rawURL string) string {
	return strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "https://")
}

// restartable is an HTTP server on a fixed 127.0.0.1 port that can go down
// (connection refused) and come back on the same address.
type restartable struct {
	t       testing.TB
	handler http.Handler
	addr    string
	mu      sync.Mutex
	srv     *httptest.Server
}

func newRestartable(t testing.TB, h http.Handler) *restartable {
	r := &restartable{t: t, handler: h}
	r.start("127.0.0.1:0")
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) URL() string { return "http://" + r.addr }

func (r *restartable) start(addr string) {
	r.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.t.Fatalf("listen on %s again: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(r.handler)
	srv.Listener = ln
	srv.Start()
	r.mu.Lock()
	r.srv, r.addr = srv, ln.Addr().String()
	r.mu.Unlock()
}

func (r *restartable) stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (r *restartable) restart() { r.start(r.addr) }

// apiVector writes a Prometheus API success answer holding an instant vector.
func apiVector(samples ...string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}}`
}

// apiSample is one vector element with labels given as a JSON object body.
func apiSample(labels string, v string) string {
	return fmt.Sprintf(`{"metric":{%s},"value":[1795814206.5,%q]}`, labels, v)
}

// fakeClock is a Now the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// evalFunc adapts a function to Evaluator.
type evalFunc func(ctx context.Context, at time.Time, queries []string) []Result

func (f evalFunc) Eval(ctx context.Context, at time.Time, queries []string) []Result {
	return f(ctx, at, queries)
}
func (f evalFunc) String() string { return "test evaluator" }
