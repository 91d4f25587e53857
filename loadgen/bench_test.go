package loadgen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// vllmStream renders a vLLM-style stream of n content events, the way
// llm-d-inference-sim sends it (see testdata/*.sse).
func vllmStream(api string, n int) []byte {
	var b strings.Builder
	head := `data: {"id":"cmpl-4ce47ff6-af25-54f8-b532-7e63a53e325f-0","model":"Qwen/Qwen2.5-1.5B-Instruct","object":"text_completion","created":1795814206,"usage":null,"choices":[{"index":0,"finish_reason":null,`
	if api == "chat" {
		head = `data: {"id":"chatcmpl-264f48c9-39fc-5e4a-b864-5cd9ce6451fd","model":"Qwen/Qwen2.5-1.5B-Instruct","object":"chat.completion.chunk","created":1795814206,"usage":null,"choices":[{"index":0,"finish_reason":null,`
		b.WriteString(head + `"delta":{"role":"assistant"}}]}` + "\n\n")
	}
	for i := range n {
		if api == "chat" {
			fmt.Fprintf(&b, `%s"delta":{"content":"tok%d "}}]}`+"\n\n", head, i)
		} else {
			fmt.Fprintf(&b, `%s"text":"tok%d "}]}`+"\n\n", head, i)
		}
	}
	fmt.Fprintf(&b, `data: {"id":"x","usage":{"prompt_tokens":8,"completion_tokens":%d,"total_tokens":%d},"choices":[]}`+"\n\n", n, n+8)
	b.WriteString("data: [DONE]\n\n")
	return []byte(b.String())
}

// reusedTransport answers with the same response object every time (the
// benchmark is sequential), so the figures are the timing transport's own.
type reusedTransport struct {
	resp *http.Response
	body eventReader
}

func (r *reusedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.body.off = 0
	r.resp.Body = &r.body
	r.resp.Request = req
	return r.resp, nil
}

// streamBench sets up one request of api with n tokens through the timing
// transport and returns a function that runs it once.
func streamBench(tb testing.TB, api string, n int) func() {
	b := testBodies(tb, api, true, n)
	rt := &reusedTransport{
		resp: &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{"Content-Type": {"text/event-stream"}}},
		body: eventReader{data: vllmStream(api, n)},
	}
	cfg := Config{URL: "http://127.0.0.1:1", Bodies: b, Transport: rt, Epoch: time.Now()}
	var last int
	g, err := New(cfg, func(r *measure.Request) {
		if r.Events != n || r.OutputTokens != n {
			panic(fmt.Sprintf("events %d tokens %d, want %d", r.Events, r.OutputTokens, n))
		}
		last = r.Events
	})
	if err != nil {
		tb.Fatal(err)
	}
	s := &stage{g: g, start: g.epoch, epoch: g.epoch}
	req, _ := http.NewRequest(http.MethodPost, g.url, nil)
	req.Header = g.header.Clone()
	req.Header.Set(seqHeader, "7")
	return func() {
		if _, err := s.RoundTrip(req); err != nil || last != n {
			panic(err)
		}
	}
}

func TestStreamAllocsDoNotGrow(t *testing.T) {
	for _, api := range []string{"completions", "chat"} {
		small := testing.AllocsPerRun(200, streamBench(t, api, 16))
		large := testing.AllocsPerRun(200, streamBench(t, api, 256))
		if small != large {
			t.Errorf("%s: %g allocations for 16 tokens, %g for 256: the SSE path allocates per token", api, small, large)
		}
	}
}

func BenchmarkStream(b *testing.B) {
	for _, api := range []string{"completions", "chat"} {
		for _, n := range []int{16, 256} {
			b.Run(fmt.Sprintf("%s/%d-tokens", api, n), func(b *testing.B) {
				run := streamBench(b, api, n)
				b.SetBytes(int64(len(vllmStream(api, n))))
				b.ReportAllocs()
				for b.Loop() {
					run()
				}
			})
		}
	}
}

func BenchmarkParseChunk(b *testing.B) {
	line := []byte(`{"id":"chatcmpl-264f48c9-39fc-5e4a-b864-5cd9ce6451fd","model":"Qwen/Qwen2.5-1.5B-Instruct","object":"chat.completion.chunk","created":1795814206,"usage":null,"choices":[{"index":0,"finish_reason":null,"delta":{"content":"The "}}]}`)
	var c chunk
	b.ReportAllocs()
	for b.Loop() {
		if !parseChunk(line, &c) || !c.content {
			b.Fatal("not content")
		}
	}
}

func BenchmarkBody(b *testing.B) {
	bodies := testBodies(b, "chat", true, 64)
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		if len(bodies.Body(seq)) == 0 {
			b.Fatal("empty body")
		}
		seq++
	}
}

// BenchmarkNewBodies renders a pool: 1024 synthetic prompts, and 1024 chat
// messages arrays as a prompt file gives them (a system message first).
func BenchmarkNewBodies(b *testing.B) {
	msgs := make(listSource, 1024)
	for i := range msgs {
		msgs[i] = Prompt{Text: "x", Messages: json.RawMessage(fmt.Sprintf(
			`[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"question %d: %s"}]}]`, i, strings.Repeat("why? ", 50)))}
	}
	for _, c := range []struct {
		name string
		spec RequestSpec
	}{
		{"completions-synthetic", RequestSpec{API: APICompletions, Prompts: Synthetic(measure.Fixed(128), 1)}},
		{"chat-messages", RequestSpec{API: APIChat, Prompts: msgs}},
	} {
		b.Run(c.name, func(b *testing.B) {
			c.spec.Model, c.spec.MaxTokens, c.spec.Stream = "Qwen/Qwen2.5-1.5B-Instruct", measure.Fixed(64), true
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewBodies(c.spec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPacers(b *testing.B) {
	pacers := []struct {
		name string
		s    Schedule
	}{
		{"constant", Constant(1000, time.Hour)},
		{"ramp", Ramp(1, 1000, time.Hour)},
		{"poisson-constant", Poisson(Constant(1000, time.Hour), 1)},
		{"poisson-ramp", Poisson(Ramp(1, 1000, time.Hour), 1)},
	}
	for _, p := range pacers {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			var hits uint64
			for b.Loop() {
				if _, stop := p.s.Pace(p.s.At(hits), hits); stop {
					hits = 0
					continue
				}
				hits++
			}
		})
	}
}
