package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// collector is a sink that hands records to the test through a channel.
type collector struct{ ch chan *measure.Request }

func newCollector() *collector { return &collector{ch: make(chan *measure.Request, 1<<14)} }

func (c *collector) sink(r *measure.Request) { c.ch <- r }

// take waits for n records, failing the test after within.
func (c *collector) take(t *testing.T, n int, within time.Duration) []*measure.Request {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	out := make([]*measure.Request, 0, n)
	for len(out) < n {
		select {
		case r := <-c.ch:
			out = append(out, r)
		case <-deadline.C:
			t.Fatalf("got %d records within %s, want %d", len(out), within, n)
		}
	}
	return out
}

// rest returns the records already delivered, without waiting.
func (c *collector) rest() []*measure.Request {
	var out []*measure.Request
	for {
		select {
		case r := <-c.ch:
			out = append(out, r)
		default:
			return out
		}
	}
}

func testBodies(t testing.TB, api string, stream bool, maxTokens int) *Bodies {
	t.Helper()
	b, err := NewBodies(RequestSpec{
		API: api, Model: "Qwen/Qwen2.5-1.5B-Instruct", Stream: stream,
		MaxTokens: measure.Fixed(maxTokens), IgnoreEOS: true,
		Prompts: Synthetic(measure.Fixed(8), 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newGen builds a generator on url with a collector sink.
func newGen(t testing.TB, url string, b *Bodies, mutate func(*Config)) (*Generator, *collector) {
	t.Helper()
	cfg := Config{URL: url, Bodies: b, Epoch: time.Now()}
	if mutate != nil {
		mutate(&cfg)
	}
	c := newCollector()
	g, err := New(cfg, c.sink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Abort()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Wait(ctx); err != nil {
			t.Errorf("cleanup: requests still in flight: %v", err)
		}
	})
	return g, c
}

// roundTrip sends request seq of stage 0 straight through the timing
// transport (no vegeta) and returns its record.
func roundTrip(t testing.TB, g *Generator, c *collector, seq uint64) *measure.Request {
	t.Helper()
	s := &stage{g: g, idx: 0, start: g.epoch, epoch: g.epoch}
	req, err := http.NewRequest(http.MethodPost, g.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = g.header.Clone()
	req.Header.Set(seqHeader, strconv.FormatUint(seq, 10))
	resp, err := s.RoundTrip(req)
	if err == nil {
		if resp.Body != http.NoBody {
			t.Errorf("vegeta got a body %T, want http.NoBody", resp.Body)
		}
		resp.Body.Close()
	}
	select {
	case r := <-c.ch:
		return r
	default:
		t.Fatal("RoundTrip returned before the record reached the sink")
		return nil
	}
}

// sseServer streams n content events in vLLM's format: a role-only chunk
// (chat) right with the headers, the first content event after ttft, the
// next ones every itl (on an absolute grid, so no drift), a finish chunk, the
// usage chunk and [DONE].
type sseServer struct {
	chat        bool
	ttft, itl   time.Duration
	tokens      int
	prompt      int
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	requests    atomic.Int64

	// What the server actually did, request by request: the ground truth a
	// timing test compares the client's measurements with (on a busy
	// machine the server's own pacing runs late, and the client must
	// measure what happened, not what was planned).
	mu    sync.Mutex
	truth map[string]served // by the request id the prompt carries
}

// served is one request's timing as the server saw it: when it had read
// the request, when it began writing the first content event, and the gaps
// between the content events' writes.
type served struct {
	read, first time.Time
	itl         []time.Duration
}

// served returns the ground truth of the requests finished so far, by
// request id (see reqID).
func (s *sseServer) served() map[string]served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.truth)
}

var idInPrompt = regexp.MustCompile(`\[r[0-9a-f]{2}\.[0-9a-f]{8}\] `)

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.requests.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxInFlight.Load()
		if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	read := time.Now()
	fl := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	if s.chat {
		fmt.Fprint(w, `data: {"id":"c","object":"chat.completion.chunk","usage":null,"choices":[{"index":0,"finish_reason":null,"delta":{"role":"assistant","content":""}}]}`+"\n\n")
	}
	fl.Flush()
	truth := served{read: read}
	last := start
	defer func() {
		if id := idInPrompt.Find(body); id != nil && len(truth.itl) == s.tokens-1 {
			s.mu.Lock()
			if s.truth == nil {
				s.truth = map[string]served{}
			}
			s.truth[string(id)] = truth
			s.mu.Unlock()
		}
	}()
	for i := range s.tokens {
		if !sleepUntil(start.Add(s.ttft+time.Duration(i)*s.itl), r.Context().Done()) {
			return
		}
		// Taken before the write: the client cannot read the event
		// sooner, however late this goroutine runs after it.
		now := time.Now()
		if s.chat {
			fmt.Fprintf(w, `data: {"id":"c","object":"chat.completion.chunk","usage":null,"choices":[{"index":0,"finish_reason":null,"delta":{"content":"tok%d "}}]}`+"\n\n", i)
		} else {
			fmt.Fprintf(w, `data: {"id":"c","object":"text_completion","usage":null,"choices":[{"index":0,"finish_reason":null,"text":"tok%d "}]}`+"\n\n", i)
		}
		fl.Flush()
		if i == 0 {
			truth.first = now
		} else {
			truth.itl = append(truth.itl, now.Sub(last))
		}
		last = now
	}
	if s.chat {
		fmt.Fprint(w, `data: {"id":"c","choices":[{"index":0,"finish_reason":"length","delta":{}}]}`+"\n\n")
	} else {
		fmt.Fprint(w, `data: {"id":"c","choices":[{"index":0,"finish_reason":"length","text":""}]}`+"\n\n")
	}
	fmt.Fprintf(w, `data: {"id":"c","usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d},"choices":[]}`+"\n\n", s.prompt, s.tokens, s.prompt+s.tokens)
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// sleepUntil returns at `at`, or false when done closes first. Go's timers
// may fire up to a millisecond late (the poller sleeps in whole
// milliseconds), so it sleeps until a millisecond before and yields the rest:
// the server's pacing is what the timing test compares against.
func sleepUntil(at time.Time, done <-chan struct{}) bool {
	if d := time.Until(at) - time.Millisecond; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-done:
			return false
		}
	}
	for time.Now().Before(at) {
		runtime.Gosched()
	}
	return true
}

// gate is a handler that holds every request until released (or the client
// goes away), and tells the test each time one arrives.
type gate struct {
	arrived chan int64 // the arrival count, after each arrival
	release chan struct{}
	once    sync.Once
	n       atomic.Int64
	next    http.Handler // answers once released; nil: 200 with a tiny stream
}

func newGate() *gate {
	return &gate{arrived: make(chan int64, 1<<14), release: make(chan struct{})}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client going away
	g.arrived <- g.n.Add(1)
	select {
	case <-g.release:
	case <-r.Context().Done():
		return
	}
	if g.next != nil {
		g.next.ServeHTTP(w, r)
		return
	}
	fmt.Fprint(w, tinyStream)
}

const tinyStream = `data: {"choices":[{"index":0,"text":"hi"}]}` + "\n\n" +
	`data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}` + "\n\n" +
	"data: [DONE]\n\n"

// waitArrivals waits until n requests have arrived at the gate.
func (g *gate) waitArrivals(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		select {
		case k := <-g.arrived:
			if k >= n {
				return
			}
		case <-deadline.C:
			t.Fatalf("%d requests arrived within %s, want %d", g.n.Load(), within, n)
		}
	}
}

func newServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// median of durations (the lower middle for an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// eventReader returns one SSE event (up to and including its blank line) per
// Read, the way a server flushing each token arrives.
type eventReader struct {
	data []byte
	off  int
}

func (e *eventReader) Read(p []byte) (int, error) {
	if e.off >= len(e.data) {
		return 0, io.EOF
	}
	end := len(e.data)
	if i := bytes.Index(e.data[e.off:], []byte("\n\n")); i >= 0 {
		end = e.off + i + 2
	}
	n := copy(p, e.data[e.off:end])
	e.off += n
	return n, nil
}

func (e *eventReader) Close() error { return nil }

// rtFunc is an inner transport made of a function.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cannedTransport answers every request with status and body, read one event
// at a time.
func cannedTransport(status int, body []byte) rtFunc {
	return func(r *http.Request) (*http.Response, error) {
		_, _ = io.Copy(io.Discard, r.Body)
		return &http.Response{
			StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
			Header: http.Header{}, Body: &eventReader{data: body}, Request: r,
			ContentLength: -1,
		}, nil
	}
}
