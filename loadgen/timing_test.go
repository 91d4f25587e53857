package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scaleout/scaleout/internal/redact"
	"github.com/scaleout/scaleout/measure"
)

func TestParseChunk(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		ok         bool
		content    bool
		usage      bool
		prompt     int
		completion int
		err        bool
		msg        string
	}{
		{name: "completions text", in: `{"choices":[{"index":0,"text":"Hi"}]}`, ok: true, content: true, prompt: -1, completion: -1},
		{name: "completions empty text (finish chunk)", in: `{"choices":[{"index":0,"finish_reason":"length","text":""}]}`, ok: true, prompt: -1, completion: -1},
		{name: "chat role only", in: `{"choices":[{"delta":{"role":"assistant"}}]}`, ok: true, prompt: -1, completion: -1},
		{name: "chat role with empty content", in: `{"choices":[{"delta":{"role":"assistant","content":""}}]}`, ok: true, prompt: -1, completion: -1},
		{name: "chat null content", in: `{"choices":[{"delta":{"content":null,"tool_calls":[{"x":"{\"a\":1}"}]}}]}`, ok: true, prompt: -1, completion: -1},
		{name: "chat content", in: `{"choices":[{"delta":{"content":"The "}}]}`, ok: true, content: true, prompt: -1, completion: -1},
		{name: "chat reasoning_content", in: `{"choices":[{"delta":{"reasoning_content":"hmm"}}]}`, ok: true, content: true, prompt: -1, completion: -1},
		{name: "chat reasoning", in: `{"choices":[{"delta":{"reasoning":"hmm"}}]}`, ok: true, content: true, prompt: -1, completion: -1},
		{name: "escaped quote in content", in: `{"choices":[{"delta":{"content":"say \"text\":\"x\""}}],"usage":null}`, ok: true, content: true, prompt: -1, completion: -1},
		{name: "text key outside choices is not content", in: `{"text":"x","choices":[]}`, ok: true, prompt: -1, completion: -1},
		{name: "second choice carries content", in: `{"choices":[{"text":""},{"text":"b"}]}`, ok: true, content: true, prompt: -1, completion: -1},
		{name: "usage chunk", in: `{"usage":{"prompt_tokens":6,"completion_tokens":5,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0}},"choices":[]}`, ok: true, usage: true, prompt: 6, completion: 5},
		{name: "usage null", in: `{"usage":null,"choices":[{"text":"a"}]}`, ok: true, content: true, prompt: -1, completion: -1},
		{name: "nested error", in: `{"error":{"message":"engine \"died\"","type":"InternalServerError","code":500}}`, ok: true, err: true, msg: `engine "died"`, prompt: -1, completion: -1},
		{name: "flat error", in: `{"object":"error","message":"queue full","type":"x","code":429}`, ok: true, err: true, msg: "queue full", prompt: -1, completion: -1},
		{name: "error string", in: `{"error":"overloaded"}`, ok: true, err: true, msg: "overloaded", prompt: -1, completion: -1},
		{name: "error null", in: `{"error":null,"choices":[{"text":"a"}]}`, ok: true, content: true, prompt: -1, completion: -1},
		{name: "white space", in: " { \"choices\" : [ { \"text\" : \"a\" } ] } ", ok: true, content: true, prompt: -1, completion: -1},
		{name: "truncated", in: `{"choices":[{"text":"a"`, prompt: -1, completion: -1},
		{name: "not an object", in: `[1,2]`, prompt: -1, completion: -1},
		{name: "trailing garbage", in: `{"choices":[]} x`, prompt: -1, completion: -1},
		{name: "missing colon", in: `{"choices" []}`, prompt: -1, completion: -1},
		{name: "plain text", in: `hello`, prompt: -1, completion: -1},
		{name: "empty", in: ``, prompt: -1, completion: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c chunk
			b := []byte(tt.in)
			ok := parseChunk(b, &c)
			if ok != tt.ok {
				t.Fatalf("ok = %t, want %t", ok, tt.ok)
			}
			if !ok {
				return
			}
			if c.content != tt.content || c.usage != tt.usage || c.prompt != tt.prompt || c.completion != tt.completion || c.err != tt.err {
				t.Errorf("got content %t usage %t prompt %d completion %d err %t, want %t %t %d %d %t",
					c.content, c.usage, c.prompt, c.completion, c.err, tt.content, tt.usage, tt.prompt, tt.completion, tt.err)
			}
			if tt.err {
				if got := c.message(b); got != tt.msg {
					t.Errorf("message %q, want %q", got, tt.msg)
				}
			}
		})
	}
}

// TestFixtureStreams reads the captures of llm-d-inference-sim, one event per
// Read, through the timing transport.
func TestFixtureStreams(t *testing.T) {
	tests := []struct {
		file           string
		api            string
		stream         bool
		events         int
		prompt, output int
	}{
		{"completions-stream.sse", "completions", true, 5, 2, 5},
		{"chat-stream.sse", "chat", true, 5, 6, 5}, // the role-only chunk and the empty finish delta are not tokens
		{"completions.json", "completions", false, 0, 2, 5},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			b := testBodies(t, tt.api, tt.stream, 5)
			g, c := newGen(t, "http://127.0.0.1:1", b, func(c *Config) { c.Transport = cannedTransport(200, data) })
			r := roundTrip(t, g, c, 3)
			if r.Class != measure.OK || r.Message != "" {
				t.Fatalf("class %q message %q", r.Class, r.Message)
			}
			if r.Events != tt.events || r.PromptTokens != tt.prompt || r.OutputTokens != tt.output {
				t.Errorf("events %d prompt %d output %d, want %d %d %d", r.Events, r.PromptTokens, r.OutputTokens, tt.events, tt.prompt, tt.output)
			}
			if r.Status != 200 || r.BytesIn != int64(len(data)) || r.BytesOut != int64(len(b.Body(3))) || r.Seq != 3 {
				t.Errorf("status %d bytes in %d out %d seq %d, want 200 %d %d 3", r.Status, r.BytesIn, r.BytesOut, r.Seq, len(data), len(b.Body(3)))
			}
			if tt.stream {
				if len(r.ITL) != tt.events-1 || cap(r.ITL) != 4 {
					t.Errorf("ITL len %d cap %d, want %d and 4 (max_tokens−1)", len(r.ITL), cap(r.ITL), tt.events-1)
				}
				if r.TTFT <= 0 || r.TTFT < r.Headers || r.E2E < r.TTFT {
					t.Errorf("headers %s ttft %s e2e %s: want 0 < headers ≤ ttft ≤ e2e", r.Headers, r.TTFT, r.E2E)
				}
			} else if r.TTFT != 0 || r.ITL != nil || r.E2E <= 0 {
				t.Errorf("non-streamed: ttft %s itl %v e2e %s, want 0, nil, > 0", r.TTFT, r.ITL, r.E2E)
			}
			if r.Scheduled != -1 {
				t.Errorf("scheduled %s without a schedule, want -1", r.Scheduled)
			}
		})
	}
}

// TestMeasuredTiming runs a server with a known time to first token and
// inter-token gap through vegeta and checks the medians to 2 ms.
func TestMeasuredTiming(t *testing.T) {
	const ttft, itl, tokens = 40 * time.Millisecond, 10 * time.Millisecond, 8
	for _, api := range []string{"completions", "chat"} {
		t.Run(api, func(t *testing.T) {
			srv := &sseServer{chat: api == "chat", ttft: ttft, itl: itl, tokens: tokens, prompt: 9}
			ts := newServer(t, srv)
			g, c := newGen(t, ts.URL, testBodies(t, api, true, tokens), nil)
			if err := g.Run(context.Background(), 0, Stage{Name: "s", Duration: 500 * time.Millisecond, Concurrency: 2}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := g.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			recs := c.rest()
			if len(recs) < 6 {
				t.Fatalf("%d requests, want at least 6", len(recs))
			}
			var ttfts, itls, headers []time.Duration
			for _, r := range recs {
				if r.Class != measure.OK || r.Events != tokens || r.OutputTokens != tokens || r.PromptTokens != 9 || len(r.ITL) != tokens-1 {
					t.Fatalf("record %+v: want OK, %d events, %d output and 9 prompt tokens", r, tokens, tokens)
				}
				if r.Scheduled != -1 || r.Stage != 0 {
					t.Errorf("closed loop: scheduled %s stage %d, want -1 and 0", r.Scheduled, r.Stage)
				}
				ttfts = append(ttfts, r.TTFT)
				itls = append(itls, r.ITL...)
				headers = append(headers, r.Headers)
			}
			// The client's figures against what the server did, request
			// by request (ground truth: on a busy machine the server's
			// pacing runs late, and the client must measure that, not the
			// plan). On one clock: the client sent before the server had
			// read the request, and read the first token no sooner than
			// the server flushed it, so a TTFT taken from the headers or
			// the role chunk (flushed 40 ms before) cannot pass. One taken
			// at a later event would count fewer ITL gaps (checked above);
			// the bound on the read delay is far above a busy machine's.
			const early = 500 * time.Microsecond // two goroutines reading one clock
			truth := srv.served()
			var lateRead, srvITL []time.Duration
			for _, r := range recs {
				sv, ok := truth[reqID(r.Stage, r.Seq)]
				if !ok {
					t.Fatalf("request %d: the server has no record of its id", r.Seq)
				}
				sent := g.cfg.Epoch.Add(r.Sent)
				if sent.After(sv.read.Add(early)) {
					t.Errorf("request %d: sent %v after the server had read it", r.Seq, sent.Sub(sv.read))
				}
				firstRead := sent.Add(r.TTFT)
				if firstRead.Before(sv.first) {
					t.Errorf("request %d: its first token read %v before the server began writing it: the TTFT is not of the first content event", r.Seq, sv.first.Sub(firstRead))
				}
				lateRead = append(lateRead, firstRead.Sub(sv.first))
				srvITL = append(srvITL, sv.itl...)
			}
			t.Logf("%d requests: median TTFT %s, read a median %s after the server's flush; ITL %s (server %s), headers %s",
				len(recs), median(ttfts), median(lateRead), median(itls), median(srvITL), median(headers))
			if m := median(lateRead); m > ttft {
				t.Errorf("the first token was read a median %s after the server flushed it: the TTFT is not of the first event", m)
			}
			if d := median(itls) - median(srvITL); d < -2*time.Millisecond || d > 2*time.Millisecond {
				t.Errorf("median ITL %s, the server's %s: want it within ± 2ms", median(itls), median(srvITL))
			}
			// The headers came at once: they are not the first token.
			if h := median(headers); h > ttft/2 {
				t.Errorf("median time to headers %s, want well below the TTFT %s", h, ttft)
			}
			if l := g.Live(); l.Sent != uint64(len(recs)) || l.Done != l.Sent || l.Errors != 0 || l.InFlight != 0 {
				t.Errorf("live %+v after %d requests", l, len(recs))
			}
		})
	}
}

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		class  measure.ErrClass
		msg    string
	}{
		{"429 queue full", 429, "application/json", readFixture(t, "error-429-queue-full.json"), "http_429", "Failed to enqueue request, waiting requests queue is full"},
		{"404 unknown model", 404, "application/json", readFixture(t, "error-404-unknown-model.json"), "http_404", "The model `no-such-model` does not exist."},
		{"400 over the context", 400, "application/json", readFixture(t, "error-400-context.json"), "http_400",
			"This model's maximum context length is 256 tokens. However, you requested 1001 tokens (1 in the messages, 1000 in the completion). Please reduce the length of the messages or completion"},
		{"500 flat error", 500, "application/json", `{"object":"error","message":"engine\ndead","type":"x","code":500}`, "http_500", "engine dead"},
		{"422 detail", 422, "application/json", `{"detail":"field required"}`, "http_422", "field required"},
		{"503 text body", 503, "text/plain", "upstream connect error or disconnect/reset before headers.\r\n reset reason: overflow", "http_503",
			"upstream connect error or disconnect/reset before headers. reset reason: overflow"},
		{"502 empty body", 502, "text/plain", "", "http_502", "502 Bad Gateway"},
		{"401 JSON without a message", 401, "application/json", `{"code":401}`, "http_401", "401 Unauthorized"},
		{"307 redirect is not followed", 307, "text/plain", "", "http_307", "307 Temporary Redirect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, stream := range []bool{true, false} {
				ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", tt.ctype)
					if tt.status == 307 {
						w.Header().Set("Location", "/elsewhere")
					}
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.body)
				}))
				g, c := newGen(t, ts.URL, testBodies(t, "completions", stream, 5), nil)
				r := roundTrip(t, g, c, 0)
				if r.Class != tt.class || r.Message != tt.msg || r.Status != tt.status {
					t.Errorf("stream %t: class %q status %d message %q, want %q %d %q", stream, r.Class, r.Status, r.Message, tt.class, tt.status, tt.msg)
				}
				if r.BytesIn != int64(len(tt.body)) || r.Events != 0 || r.OutputTokens != -1 || r.E2E < r.Headers {
					t.Errorf("bytes in %d events %d output %d e2e %s headers %s", r.BytesIn, r.Events, r.OutputTokens, r.E2E, r.Headers)
				}
				if l := g.Live(); l.Errors != 1 || l.Done != 1 {
					t.Errorf("live %+v, want 1 done, 1 error", l)
				}
			}
		})
	}
}

func TestStreamProblems(t *testing.T) {
	ev := func(text string) string { return `data: {"choices":[{"index":0,"text":"` + text + `"}]}` + "\n\n" }
	tests := []struct {
		name    string
		stream  bool
		handler func(w http.ResponseWriter, r *http.Request)
		class   measure.ErrClass
		msg     string // the message must contain it
		events  int
		output  int
	}{
		{
			name:   "error event inside the stream",
			stream: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, ev("a")+ev("b")+`data: {"error":{"message":"The engine died","type":"InternalServerError","code":500}}`+"\n\n"+"data: [DONE]\n\n")
			},
			class: measure.StreamError, msg: "The engine died", events: 2, output: -1,
		},
		{
			name:   "stream cut mid-way (connection closed)",
			stream: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, ev("a")+ev("b")+ev("c"))
				w.(http.Flusher).Flush()
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					panic(err)
				}
				conn.Close()
			},
			class: measure.StreamCut, msg: "stream cut after 3 content events", events: 3, output: -1,
		},
		{
			name:   "stream ends without [DONE]",
			stream: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, ev("a")+`data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`+"\n\n")
			},
			class: measure.StreamCut, msg: "ended before [DONE] after 1 content event", events: 1, output: 1,
		},
		{
			name:    "empty stream",
			stream:  true,
			handler: func(w http.ResponseWriter, r *http.Request) {},
			class:   measure.StreamCut, msg: "empty body", output: -1,
		},
		{
			name:   "HTML instead of SSE",
			stream: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				io.WriteString(w, "<html><body>It works!</body></html>\n")
			},
			class: measure.StreamMalformed, msg: "not SSE: <html>", output: -1,
		},
		{
			name:   "malformed event",
			stream: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, ev("a")+"data: {\"choices\":[{\"text\":\n\n"+ev("b")+"data: [DONE]\n\n")
			},
			class: measure.StreamMalformed, msg: "malformed event", events: 2, output: -1,
		},
		{
			name:   "JSON error answered with 200 to a stream",
			stream: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"object":"error","message":"busy"}`)
			},
			class: measure.StreamError, msg: "busy", output: -1,
		},
		{
			name:   "comments, CRLF and event names are SSE",
			stream: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, ": keep-alive\r\n\r\nevent: message\r\nid: 1\r\n"+strings.ReplaceAll(ev("a")+tinyStream, "\n", "\r\n"))
			},
			class: measure.OK, events: 2, output: 1,
		},
		{
			name:   "non-streamed body that is not JSON",
			stream: false,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "OK")
			},
			class: measure.StreamMalformed, msg: "not a JSON object: OK", output: -1,
		},
		{
			name:   "non-streamed error with 200",
			stream: false,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"error":{"message":"no capacity"}}`)
			},
			class: measure.StreamError, msg: "no capacity", output: -1,
		},
		{
			name:   "non-streamed body cut",
			stream: false,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "500")
				io.WriteString(w, `{"choices":[`)
				w.(http.Flusher).Flush()
				conn, _, _ := http.NewResponseController(w).Hijack()
				conn.Close()
			},
			class: measure.StreamCut, msg: "body cut", output: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t, http.HandlerFunc(tt.handler))
			g, c := newGen(t, ts.URL, testBodies(t, "completions", tt.stream, 5), nil)
			r := roundTrip(t, g, c, 0)
			if r.Class != tt.class || !strings.Contains(r.Message, tt.msg) || (tt.msg == "") != (r.Message == "") {
				t.Errorf("class %q message %q, want %q with %q", r.Class, r.Message, tt.class, tt.msg)
			}
			if r.Events != tt.events || r.OutputTokens != tt.output || r.Status != 200 {
				t.Errorf("events %d output %d status %d, want %d %d 200", r.Events, r.OutputTokens, r.Status, tt.events, tt.output)
			}
			if strings.ContainsAny(r.Message, "\r\n") {
				t.Errorf("message %q is not one line", r.Message)
			}
		})
	}
}

// TestJSONBodyOverLimit checks that a non-streamed body past 16 MiB counts
// every byte read, the 16 MiB kept as well as the drained rest.
func TestJSONBodyOverLimit(t *testing.T) {
	big := make([]byte, maxJSONBody+5<<20) // the reader keeps at most 20 MiB, then drains 1 MiB
	ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(big)
	}))
	g, c := newGen(t, ts.URL, testBodies(t, "completions", false, 5), nil)
	r := roundTrip(t, g, c, 0)
	if r.Class != measure.StreamMalformed || r.Message != "response body over 16 MiB" {
		t.Errorf("class %q message %q, want %q over 16 MiB", r.Class, r.Message, measure.StreamMalformed)
	}
	if r.BytesIn <= maxJSONBody || r.BytesIn > int64(len(big)) {
		t.Errorf("bytes in %d, want more than the %d kept, at most the %d sent", r.BytesIn, maxJSONBody, len(big))
	}
}

func TestConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g, c := newGen(t, "http://"+addr, testBodies(t, "completions", true, 5), func(c *Config) {
		c.Header = http.Header{"Authorization": {"Bearer sk-secret"}}
	})
	r := roundTrip(t, g, c, 0)
	if r.Class != measure.ConnectRefused || r.Status != 0 || r.Headers != 0 || r.E2E <= 0 {
		t.Errorf("class %q status %d headers %s e2e %s, want connect_refused 0 0 >0", r.Class, r.Status, r.Headers, r.E2E)
	}
	if !strings.Contains(r.Message, "connection refused") || strings.Contains(r.Message, "secret") {
		t.Errorf("message %q", r.Message)
	}
}

func TestTimeoutOnSlowStream(t *testing.T) {
	ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, `data: {"choices":[{"text":"a"}]}`+"\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the next token never comes
	}))
	const timeout = 150 * time.Millisecond
	g, c := newGen(t, ts.URL, testBodies(t, "completions", true, 5), func(c *Config) { c.Timeout = timeout })
	r := roundTrip(t, g, c, 0)
	if r.Class != measure.Timeout || r.Events != 1 || r.Status != 200 {
		t.Fatalf("class %q events %d status %d message %q, want timeout after 1 event", r.Class, r.Events, r.Status, r.Message)
	}
	if r.Message != "request timeout 150ms passed after 1 content event" {
		t.Errorf("message %q", r.Message)
	}
	// The timeout runs from before the send (the dial is in it) and the
	// generator was made before the request: the request ended no sooner
	// than the timeout after the epoch. Its e2e, from the send, can be
	// shorter on a busy machine.
	if r.Done() < timeout || r.E2E > timeout+time.Second {
		t.Errorf("ended at %s (e2e %s), want about %s", r.Done(), r.E2E, timeout)
	}
}

func TestTimeoutBeforeHeaders(t *testing.T) {
	ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client going away
		<-r.Context().Done()
	}))
	g, c := newGen(t, ts.URL, testBodies(t, "completions", true, 5), func(c *Config) { c.Timeout = 50 * time.Millisecond })
	r := roundTrip(t, g, c, 0)
	if r.Class != measure.Timeout || r.Status != 0 || r.Message != "request timeout 50ms passed" {
		t.Errorf("class %q status %d message %q", r.Class, r.Status, r.Message)
	}
}

func TestClassify(t *testing.T) {
	g, _ := newGen(t, "http://127.0.0.1:1", testBodies(t, "completions", true, 5), nil)
	opErr := func(e error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", e)} }
	tests := []struct {
		name  string
		err   error
		class measure.ErrClass
	}{
		{"refused", opErr(syscall.ECONNREFUSED), measure.ConnectRefused},
		{"reset", opErr(syscall.ECONNRESET), measure.ConnectReset},
		{"EOF before a response", fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", io.EOF), measure.ConnectReset},
		{"too many open files", opErr(syscall.EMFILE), measure.ClientLimit},
		{"file table full", opErr(syscall.ENFILE), measure.ClientLimit},
		{"no ports left", opErr(syscall.EADDRNOTAVAIL), measure.ClientLimit},
		{"dns", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "gw.invalid", IsNotFound: true}}, measure.DNS},
		{"other", errors.New("tls: handshake failure"), measure.Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			class, msg := g.classify(context.Background(), tt.err)
			if class != tt.class || msg != tt.err.Error() {
				t.Errorf("classify(%v) = %q, %q; want %q, %q", tt.err, class, msg, tt.class, tt.err.Error())
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	if c, _ := g.classify(ctx, context.DeadlineExceeded); c != measure.Timeout {
		t.Errorf("expired deadline: %q, want timeout", c)
	}
	g.Abort()
	if c, m := g.classify(context.Background(), context.Canceled); c != measure.Canceled || m != "aborted" {
		t.Errorf("after Abort: %q %q, want canceled", c, m)
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\nb\r\n\tc  d", "a b c d"},
		{"  lead and trail \n", "lead and trail"},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "…"},
		{"bad \xff byte", "bad byte"},
	}
	for _, tt := range tests {
		if got := oneLine([]byte(tt.in)); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTransportWithoutSeq(t *testing.T) {
	g, _ := newGen(t, "http://127.0.0.1:1", testBodies(t, "completions", true, 5), nil)
	s := &stage{g: g, epoch: g.epoch}
	req, _ := http.NewRequest(http.MethodPost, g.url, nil)
	if _, err := s.RoundTrip(req); !errors.Is(err, errNoSeq) {
		t.Errorf("err = %v, want errNoSeq", err)
	}
}

// A server that echoes the Authorization header: Config.Redact takes the
// token out of every failure's message, even where the message is cut in
// the middle of it. A success is not looked at.
func TestRedactsEchoedSecrets(t *testing.T) {
	const token = "s3cr3t-token-0123456789"
	long := strings.Repeat("x", maxMessage-20)
	for _, tt := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"401 body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(401)
			io.WriteString(w, "invalid credentials: "+r.Header.Get("Authorization"))
		}},
		{"cut in the middle", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(403)
			io.WriteString(w, long+" "+r.Header.Get("Authorization")+" "+long)
		}},
		{"SSE error event", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: {\"error\":{\"message\":\"rejected %s\"}}\n\n", r.Header.Get("Authorization"))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t, tt.h)
			g, c := newGen(t, ts.URL, testBodies(t, "completions", true, 5), func(cfg *Config) {
				cfg.Header = http.Header{"Authorization": {"Bearer " + token}}
				cfg.Redact = redact.New(token).Text
			})
			r := roundTrip(t, g, c, 0)
			if !r.Failed() || r.Message == "" || strings.Contains(r.Message, token[:6]) || !strings.Contains(r.Message, redact.Mark) {
				t.Errorf("class %s message %q", r.Class, r.Message)
			}
		})
	}
	ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"choices":[{"index":0,"text":"x"}]}`+"\n\ndata: [DONE]\n\n")
	}))
	calls := 0
	g, c := newGen(t, ts.URL, testBodies(t, "completions", true, 5), func(cfg *Config) {
		cfg.Redact = func(s string) string { calls++; return s }
	})
	if r := roundTrip(t, g, c, 0); r.Failed() || calls != 0 {
		t.Errorf("a success: class %s, Redact called %d times", r.Class, calls)
	}
}
