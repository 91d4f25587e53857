package sim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// zeroTime is a fleet that answers at once on its fake clock.
func zeroTime() Config {
	c := testConfig()
	c.TTFT, c.ITL = 0, 0
	return c
}

func sameShape(t *testing.T, what string, got, want any) {
	t.Helper()
	if gs, ws := shape(got), shape(want); !reflect.DeepEqual(gs, ws) {
		t.Errorf("%s: shape\n got  %v\n want %v", what, gs, ws)
	}
}

func get(t *testing.T, h *harness, path string) (int, string) {
	t.Helper()
	resp, err := h.srv.Client().Get(h.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func postBody(t *testing.T, h *harness, path, body string) (int, http.Header, string) {
	t.Helper()
	resp := h.post(t.Context(), path, body)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestModels(t *testing.T) {
	h := newHarness(t, zeroTime(), false)
	status, body := get(t, h, "/v1/models")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	got := decode(t, body)
	sameShape(t, "/v1/models", got, decode(t, string(fixture(t, "models.json"))))
	var m struct {
		Object string `json:"object"`
		Data   []struct {
			ID          string `json:"id"`
			Object      string `json:"object"`
			OwnedBy     string `json:"owned_by"`
			Root        string `json:"root"`
			Created     int64  `json:"created"`
			MaxModelLen int    `json:"max_model_len"`
		} `json:"data"`
	}
	must(t, json.Unmarshal([]byte(body), &m))
	d := m.Data[0]
	if m.Object != "list" || len(m.Data) != 1 || d.ID != "Qwen/Qwen2.5-1.5B-Instruct" || d.Object != "model" ||
		d.OwnedBy != "vllm" || d.Root != d.ID || d.MaxModelLen != 256 || d.Created != epoch.Unix() {
		t.Errorf("/v1/models = %s", body)
	}
}

type usageBody struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chunk struct {
	ID      string     `json:"id"`
	Model   string     `json:"model"`
	Object  string     `json:"object"`
	Created int64      `json:"created"`
	Usage   *usageBody `json:"usage"`
	Choices []struct {
		Index        int     `json:"index"`
		FinishReason *string `json:"finish_reason"`
		Text         *string `json:"text"`
		Delta        *struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Message *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
}

func TestCompletionNotStreamed(t *testing.T) {
	h := newHarness(t, zeroTime(), false)
	status, hdr, body := postBody(t, h, "/v1/completions",
		`{"model":"Qwen/Qwen2.5-1.5B-Instruct","prompt":"Testing testing","max_tokens":5,"ignore_eos":true,"temperature":0.7}`)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d %q: %s", status, hdr.Get("Content-Type"), body)
	}
	sameShape(t, "completion", decode(t, body), decode(t, string(fixture(t, "completions.json"))))
	var c chunk
	must(t, json.Unmarshal([]byte(body), &c))
	ch := c.Choices[0]
	if !strings.HasPrefix(c.ID, "cmpl-") || !strings.HasSuffix(c.ID, "-0") || len(c.ID) != len("cmpl-")+36+2 ||
		c.Object != "text_completion" || c.Model != "Qwen/Qwen2.5-1.5B-Instruct" || c.Created != epoch.Unix() ||
		*c.Usage != (usageBody{2, 5, 7}) || *ch.FinishReason != "length" || ch.Text == nil || len(*ch.Text) == 0 {
		t.Errorf("completion = %s", body)
	}
}

// streamEvents posts a streamed request and returns its events' payloads.
func streamEvents(t *testing.T, h *harness, path, body string) []string {
	t.Helper()
	status, hdr, out := postBody(t, h, path, body)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d %q: %s", status, hdr.Get("Content-Type"), out)
	}
	return sseEvents(t, out)
}

func TestCompletionStreamed(t *testing.T) {
	h := newHarness(t, zeroTime(), false)
	events := streamEvents(t, h, "/v1/completions",
		`{"prompt":"Testing testing","max_tokens":5,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`)
	want := sseEvents(t, string(fixture(t, "completions-stream.sse")))
	if len(events) != len(want) {
		t.Fatalf("%d events, captured %d: %q", len(events), len(want), events)
	}
	if events[len(events)-1] != "[DONE]" {
		t.Fatalf("last event %q", events[len(events)-1])
	}
	var text strings.Builder
	var id string
	for i, ev := range events[:len(events)-1] {
		sameShape(t, "event "+ev, decode(t, ev), decode(t, want[i]))
		var c chunk
		must(t, json.Unmarshal([]byte(ev), &c))
		if id == "" {
			id = c.ID
		}
		if c.ID != id || c.Object != "text_completion" {
			t.Errorf("event %d: id %q object %q", i, c.ID, c.Object)
		}
		switch {
		case i < 5: // tokens
			if c.Usage != nil || c.Choices[0].FinishReason != nil || c.Choices[0].Text == nil || *c.Choices[0].Text == "" {
				t.Errorf("token event %d: %s", i, ev)
			}
			text.WriteString(*c.Choices[0].Text)
		case i == 5: // finish
			if *c.Choices[0].FinishReason != "length" || *c.Choices[0].Text != "" {
				t.Errorf("finish event: %s", ev)
			}
		case i == 6: // usage
			if len(c.Choices) != 0 || *c.Usage != (usageBody{2, 5, 7}) {
				t.Errorf("usage event: %s", ev)
			}
		}
	}
	if text.Len() == 0 {
		t.Error("no text")
	}
	// Without include_usage there is no usage chunk.
	events = streamEvents(t, h, "/v1/completions", `{"prompt":"x","max_tokens":3,"ignore_eos":true,"stream":true}`)
	if len(events) != 3+1+1 {
		t.Errorf("no include_usage: %d events %q", len(events), events)
	}
}

func TestChatStreamedAndNot(t *testing.T) {
	h := newHarness(t, zeroTime(), false)
	events := streamEvents(t, h, "/v1/chat/completions",
		`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"say four words"}]}],"max_tokens":5,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`)
	want := sseEvents(t, string(fixture(t, "chat-stream.sse")))
	if len(events) != len(want) {
		t.Fatalf("%d events, captured %d: %q", len(events), len(want), events)
	}
	for i, ev := range events[:len(events)-1] {
		sameShape(t, "chat event "+ev, decode(t, ev), decode(t, want[i]))
		var c chunk
		must(t, json.Unmarshal([]byte(ev), &c))
		if c.Object != "chat.completion.chunk" || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Errorf("event %d: %s", i, ev)
		}
		switch {
		case i == 0: // the role alone, not a token
			if d := c.Choices[0].Delta; d.Role == nil || *d.Role != "assistant" || d.Content != nil {
				t.Errorf("first chunk: %s", ev)
			}
		case i <= 5:
			if d := c.Choices[0].Delta; d.Content == nil || d.Role != nil {
				t.Errorf("content chunk %d: %s", i, ev)
			}
		case i == 6:
			if *c.Choices[0].FinishReason != "length" {
				t.Errorf("finish chunk: %s", ev)
			}
		case i == 7: // 5 prompt words ("be brief" + "say four words")
			if *c.Usage != (usageBody{5, 5, 10}) {
				t.Errorf("usage chunk: %s", ev)
			}
		}
	}
	if events[len(events)-1] != "[DONE]" {
		t.Errorf("last %q", events[len(events)-1])
	}

	status, _, body := postBody(t, h, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi there"}],"max_completion_tokens":4,"ignore_eos":true}`)
	var c chunk
	must(t, json.Unmarshal([]byte(body), &c))
	if status != 200 || c.Object != "chat.completion" || c.Choices[0].Message == nil || c.Choices[0].Message.Role != "assistant" ||
		c.Choices[0].Message.Content == "" || *c.Usage != (usageBody{2, 4, 6}) {
		t.Errorf("chat completion %d: %s", status, body)
	}
}

// errorBody decodes {"error":{...}} and compares its shape with a capture.
func errorBody(t *testing.T, body string, captured string) (msg, typ string, code int) {
	t.Helper()
	sameShape(t, "error", decode(t, body), decode(t, captured))
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    int     `json:"code"`
		} `json:"error"`
	}
	must(t, json.Unmarshal([]byte(body), &e))
	return e.Error.Message, e.Error.Type, e.Error.Code
}

func firstLine(b []byte) string { return strings.SplitN(string(b), "\n", 2)[0] }

func TestErrors(t *testing.T) {
	cfg := testConfig()
	cfg.MaxNumSeqs = 1
	cfg.MaxWaiting = 1
	cfg.TTFT = time.Second // requests stay in place on the fake clock
	h := newHarness(t, cfg, false)
	captured404 := firstLine(fixture(t, "error-404-unknown-model.txt"))
	captured400 := firstLine(fixture(t, "error-400-context.txt"))
	captured429 := string(fixture(t, "error-429-queue-full.json"))

	// 404: unknown model.
	status, _, body := postBody(t, h, "/v1/completions", `{"model":"no-such-model","prompt":"x","max_tokens":1}`)
	msg, typ, code := errorBody(t, body, captured404)
	if status != 404 || body != captured404+"\n" || typ != "NotFoundError" || code != 404 {
		t.Errorf("404: %d %s %s", status, msg, body)
	}
	// 400: over the context, the captured message word for word, streamed or not.
	for _, stream := range []string{"false", "true"} {
		status, _, body = postBody(t, h, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1000,"stream":`+stream+`}`)
		msg, typ, code = errorBody(t, body, captured400)
		var capturedMsg string
		{
			var e struct{ Error struct{ Message string } }
			must(t, json.Unmarshal([]byte(captured400), &e))
			capturedMsg = e.Error.Message
		}
		if status != 400 || msg != capturedMsg || typ != "BadRequestError" || code != 400 {
			t.Errorf("400 (stream %s): %d %q", stream, status, msg)
		}
	}
	// Other 400s keep the shape.
	for _, bad := range []string{`{"prompt":`, `{"max_tokens":2}`, `{"prompt":"x","max_tokens":0}`, `{"prompt":{"a":1}}`, `{"prompt":"` + strings.Repeat("w ", 256) + `"}`} {
		status, _, body = postBody(t, h, "/v1/completions", bad)
		if _, typ, code := errorBody(t, body, captured400); status != 400 || typ != "BadRequestError" || code != 400 {
			t.Errorf("%s: %d %s", bad, status, body)
		}
	}
	// 429: one slot, a queue of one, a third request.
	first := h.async("/v1/completions", `{"prompt":"x","max_tokens":1}`)
	second := h.async("/v1/completions", `{"prompt":"x","max_tokens":1}`)
	waitFor(t, h.f, "one running, one waiting", func(s State) bool { return s.Running == 1 && s.Waiting == 1 })
	status, _, body = postBody(t, h, "/v1/completions", `{"prompt":"x","max_tokens":1,"stream":true}`)
	_, typ, code = errorBody(t, body, captured429)
	if status != 429 || body != strings.TrimSpace(captured429)+"\n" || typ != "RateLimitError" || code != 429 {
		t.Errorf("429: %d %s", status, body)
	}
	h.clk.Advance(2 * time.Second)
	for _, r := range []result{recv(t, first, "first"), recv(t, second, "second")} {
		if r.status != 200 {
			t.Errorf("queued request: %d %s", r.status, r.body)
		}
	}
	// 503: no ready replica.
	must(t, h.f.Scale(0))
	status, _, body = postBody(t, h, "/v1/completions", `{"prompt":"x","max_tokens":1}`)
	if _, typ, code := errorBody(t, body, captured404); status != 503 || typ != "ServiceUnavailableError" || code != 503 {
		t.Errorf("503: %d %s", status, body)
	}
	st := waitFor(t, h.f, "nothing in flight", func(s State) bool { return s.Stats.InFlight == 0 }).Stats
	want := Stats{Received: 12, Served: 12, OK: 2, Rejected: 1, Unavailable: 1, Invalid: 8, PromptTokens: 2, GenerationTokens: 2}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

func TestSeededOutputLengths(t *testing.T) {
	lengths := func(seed uint64) []int {
		cfg := zeroTime()
		cfg.Seed = seed
		h := newHarness(t, cfg, false)
		var out []int
		for range 20 {
			_, _, body := postBody(t, h, "/v1/completions", `{"prompt":"x","max_tokens":50}`)
			var c chunk
			must(t, json.Unmarshal([]byte(body), &c))
			n := c.Usage.CompletionTokens
			reason := *c.Choices[0].FinishReason
			if n < 1 || n > 50 || (n < 50) != (reason == "stop") {
				t.Fatalf("length %d reason %s", n, reason)
			}
			out = append(out, n)
		}
		return out
	}
	a, b, c := lengths(7), lengths(7), lengths(8)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, different lengths: %v %v", a, b)
	}
	if reflect.DeepEqual(a, c) {
		t.Errorf("different seeds, same lengths: %v", a)
	}
	// The streamed token count matches usage.
	h := newHarness(t, zeroTime(), false)
	events := streamEvents(t, h, "/v1/completions", `{"prompt":"x","max_tokens":40,"stream":true,"stream_options":{"include_usage":true}}`)
	var u chunk
	must(t, json.Unmarshal([]byte(events[len(events)-2]), &u))
	if tokens := len(events) - 3; u.Usage.CompletionTokens != tokens {
		t.Errorf("usage says %d tokens, the stream carried %d", u.Usage.CompletionTokens, tokens)
	}
}

func TestClientLeaves(t *testing.T) {
	cfg := testConfig()
	cfg.MaxNumSeqs = 1
	cfg.TTFT = time.Second
	h := newHarness(t, cfg, false)
	ctxRun, cancelRun := context.WithCancel(context.Background())
	ctxWait, cancelWait := context.WithCancel(context.Background())
	go func() {
		if resp, err := doCtx(h, ctxRun); err == nil {
			<-ctxRun.Done() // hold the stream open until the client leaves
			resp.Body.Close()
		}
	}()
	waitFor(t, h.f, "one running", func(s State) bool { return s.Running == 1 })
	go func() {
		if resp, err := doCtx(h, ctxWait); err == nil { // it has no headers before a slot: Do returns at cancel
			resp.Body.Close()
		}
	}()
	waitFor(t, h.f, "one waiting", func(s State) bool { return s.Waiting == 1 })
	cancelWait()
	waitFor(t, h.f, "the waiting one gone", func(s State) bool { return s.Waiting == 0 && s.Stats.Aborted == 1 })
	cancelRun()
	s := waitFor(t, h.f, "the running one gone", func(s State) bool { return s.Running == 0 && s.Stats.Aborted == 2 })
	if s.Stats.InFlight != 0 || s.Stats.OK != 0 {
		t.Errorf("stats %+v", s.Stats)
	}
	fams := scrape(t, h)
	if v := value(t, fams, "vllm:request_success_total", map[string]string{"finished_reason": "abort"}); v != 1 {
		t.Errorf("abort count %v, want 1 (the running one)", v)
	}
}

func doCtx(h *harness, ctx context.Context) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+"/v1/completions", strings.NewReader(`{"prompt":"x","max_tokens":3,"stream":true}`))
	if err != nil {
		return nil, err
	}
	return h.srv.Client().Do(req)
}

func TestPromptTokens(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		want int
	}{
		{`"one two  three\nfour"`, 4},
		{`""`, 0},
		{`["a b", "c"]`, 3},
		{`[1, 2, 3, 4, 5]`, 5},
		{`[[1, 2], [3]]`, 3},
	} {
		got, err := promptTokens(json.RawMessage(tt.raw))
		if err != nil || got != tt.want {
			t.Errorf("promptTokens(%s) = %d, %v; want %d", tt.raw, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `null`, `{}`, `true`} {
		if _, err := promptTokens(json.RawMessage(bad)); err == nil {
			t.Errorf("promptTokens(%s): want an error", bad)
		}
	}
}

// flushCounter is a ResponseWriter that counts writes and flushes.
type flushCounter struct {
	header  http.Header
	status  int
	body    strings.Builder
	writes  int
	flushes int
}

func (w *flushCounter) Header() http.Header { return w.header }
func (w *flushCounter) WriteHeader(s int)   { w.status = s }
func (w *flushCounter) Write(b []byte) (int, error) {
	w.writes++
	return w.body.Write(b)
}
func (w *flushCounter) Flush() { w.flushes++ }

// TestFlushOnlyBeforeAWait: with zero TTFT and ITL a 64-token stream is one
// write and one flush; with a prefill to wait for, the headers are flushed
// before it and the rest goes out back to back.
func TestFlushOnlyBeforeAWait(t *testing.T) {
	for _, tt := range []struct {
		name            string
		ttft            time.Duration
		writes, flushes int
	}{{"no waits", 0, 1, 1}, {"a prefill", time.Second, 1, 2}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := zeroTime()
			cfg.TTFT = tt.ttft
			clk := NewFakeClock(epoch)
			f, err := New(cfg, clk)
			must(t, err)
			w := &flushCounter{header: http.Header{}}
			req, _ := http.NewRequest(http.MethodPost, "/v1/completions", strings.NewReader(`{"prompt":"x","max_tokens":64,"ignore_eos":true,"stream":true}`))
			done := make(chan struct{})
			go func() { f.Handler().ServeHTTP(w, req); close(done) }()
			if tt.ttft > 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				must(t, clk.BlockUntil(ctx, 1)) // the handler waits for its prefill
				clk.Advance(tt.ttft)
			}
			recv(t, done, "the stream")
			if w.status != 200 || w.writes != tt.writes || w.flushes != tt.flushes {
				t.Errorf("status %d, %d writes and %d flushes, want %d and %d", w.status, w.writes, w.flushes, tt.writes, tt.flushes)
			}
			if n := strings.Count(w.body.String(), "\n\n"); n != 64+2 {
				t.Errorf("%d events, want 66", n)
			}
		})
	}
}

func TestHugeMaxTokensIsAContextError(t *testing.T) {
	h := newHarness(t, zeroTime(), false)
	status, _, body := postBody(t, h, "/v1/completions", `{"prompt":"x","max_tokens":9223372036854775807}`)
	if status != 400 || !strings.Contains(body, "maximum context length is 256 tokens") {
		t.Errorf("%d %s", status, body)
	}
}

// The admin actions are POST only; a GET says so and how to send one.
func TestAdminIsPostOnly(t *testing.T) {
	h := newHarness(t, zeroTime(), false)
	for _, path := range []string{"/admin/scale?replicas=3", "/admin/pause", "/admin/unpause"} {
		status, body := get(t, h, path)
		if status != http.StatusMethodNotAllowed || !strings.Contains(body, "POST only") || !strings.Contains(body, "curl -X POST") {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
	}
	if status, body := get(t, h, "/admin/nothing"); status != http.StatusNotFound {
		t.Errorf("GET /admin/nothing: %d %s", status, body)
	}
	if status, _ := get(t, h, "/admin/state"); status != http.StatusOK {
		t.Errorf("GET /admin/state: %d", status)
	}
	if status, _, body := postBody(t, h, "/admin/scale?replicas=2", ""); status != http.StatusOK {
		t.Errorf("POST /admin/scale: %d %s", status, body)
	}
}
