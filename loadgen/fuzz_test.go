package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// chunkedReader returns at most n bytes a Read.
type chunkedReader struct {
	data []byte
	n    int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

func addFixtureSeeds(f *testing.F) {
	for _, name := range []string{"completions-stream.sse", "chat-stream.sse", "completions.json", "error-429-queue-full.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(7))
	}
	f.Add([]byte(tinyStream), uint8(1))
	f.Add([]byte("data: {\"error\":{\"message\":\"x\"}}\r\n\r\ndata: [DONE]\r\n"), uint8(3))
	f.Add([]byte(": ping\n\nevent: x\ndata:{\"choices\":[{\"delta\":{\"reasoning\":\"r\"}}]}\n"), uint8(2))
}

// FuzzReadStream: the SSE reader never panics, keeps its invariants, and
// gives the same answer however the body is split into reads.
func FuzzReadStream(f *testing.F) {
	addFixtureSeeds(f)
	g, err := New(Config{URL: "http://127.0.0.1:1", Bodies: testBodies(f, "chat", true, 8), Epoch: time.Now()}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, split uint8) {
		read := func(n int) *measure.Request {
			rec := &measure.Request{PromptTokens: -1, OutputTokens: -1}
			g.readStream(context.Background(), &chunkedReader{data: body, n: n}, rec, time.Now(), 8)
			return rec
		}
		whole, parts := read(len(body)+1), read(int(split)%16+1)
		for _, r := range []*measure.Request{whole, parts} {
			if r.BytesIn != int64(len(body)) || r.Events < 0 || len(r.ITL) != max(r.Events-1, 0) || r.E2E < 0 {
				t.Fatalf("bytes %d/%d events %d itl %d e2e %s", r.BytesIn, len(body), r.Events, len(r.ITL), r.E2E)
			}
			if r.Class == measure.OK && r.Message != "" || r.Class != measure.OK && r.Message == "" {
				t.Fatalf("class %q message %q", r.Class, r.Message)
			}
			if bytes.ContainsAny([]byte(r.Message), "\r\n") || len(r.Message) > maxMessage+len("…") {
				t.Fatalf("message %q is not one short line", r.Message)
			}
		}
		if whole.Events != parts.Events || whole.PromptTokens != parts.PromptTokens || whole.OutputTokens != parts.OutputTokens ||
			whole.Class != parts.Class || whole.Message != parts.Message {
			t.Fatalf("read whole: %d events %d/%d tokens %q %q; in %d-byte reads: %d events %d/%d tokens %q %q",
				whole.Events, whole.PromptTokens, whole.OutputTokens, whole.Class, whole.Message,
				int(split)%16+1, parts.Events, parts.PromptTokens, parts.OutputTokens, parts.Class, parts.Message)
		}
	})
}

// FuzzParseChunk: the scanner never panics, accepts every JSON object
// encoding/json accepts, and agrees with it on usage.
func FuzzParseChunk(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte, _ uint8) {
		for _, line := range bytes.Split(b, []byte("\n")) {
			line = bytes.TrimPrefix(line, []byte("data: "))
			var c chunk
			ok := parseChunk(line, &c)
			var ref struct {
				Usage *struct {
					Prompt     *json.Number `json:"prompt_tokens"`
					Completion *json.Number `json:"completion_tokens"`
				} `json:"usage"`
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(line, &obj) != nil {
				continue
			}
			if !ok {
				t.Fatalf("encoding/json accepts %q, parseChunk does not", line)
			}
			if json.Unmarshal(line, &ref) != nil || bytes.Count(line, []byte(`"usage"`)) != 1 {
				continue // a type mismatch or duplicate keys: nothing to compare
			}
			if (ref.Usage != nil) != c.usage {
				t.Fatalf("%q: usage %t, encoding/json says %t", line, c.usage, ref.Usage != nil)
			}
		}
	})
}

// FuzzMarkMessages: the marker goes into a messages array a prompt file
// accepts without changing anything else, and lands in a text.
func FuzzMarkMessages(f *testing.F) {
	f.Add(`[{"role":"system","content":"S"},{"role":"user","content":"U"}]`)
	f.Add(`[{"content":[{"type":"image_url","image_url":{"url":"x"}},{"text":"T","type":"text"}],"role":"user"}]`)
	f.Add(`[ {"role" : "assistant", "content" : "A\u00e9", "content":"B"}, {"role":"user","content":""} ]`)
	f.Fuzz(func(t *testing.T, msgs string) {
		p, reason := parseMessages(json.RawMessage(msgs))
		if reason != "" || bytes.Contains(p.Messages, encodedMarker) {
			return
		}
		m := markMessages(p.Messages)
		if m == nil {
			return // text only under keys spelled in another case, which encoding/json also reads
		}
		if got := bytes.Replace(m, encodedMarker, nil, 1); !bytes.Equal(got, p.Messages) {
			t.Fatalf("marked %s\nwithout the marker %s\nwant %s", m, got, p.Messages)
		}
		if q, reason := parseMessages(m); reason != "" || strings.Count(q.Text, marker) != 1 {
			t.Fatalf("marked %s: %s, text %q", m, reason, q.Text)
		}
	})
}
