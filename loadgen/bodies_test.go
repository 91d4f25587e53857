package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/scaleout/scaleout/measure"
)

// wireBody is every field a body may carry; pointers tell absent from zero.
type wireBody struct {
	Model         *string         `json:"model"`
	Prompt        *string         `json:"prompt"`
	Messages      json.RawMessage `json:"messages"`
	MaxTokens     *int            `json:"max_tokens"`
	Stream        *bool           `json:"stream"`
	StreamOptions *struct {
		IncludeUsage *bool `json:"include_usage"`
	} `json:"stream_options"`
	IgnoreEOS   *bool    `json:"ignore_eos"`
	Temperature *float64 `json:"temperature"`
}

func decodeBody(t *testing.T, b []byte) (wireBody, map[string]json.RawMessage) {
	t.Helper()
	var w wireBody
	var all map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	return w, all
}

func ptr[T any](v T) *T { return &v }

func TestBodiesFields(t *testing.T) {
	tests := []struct {
		name     string
		spec     RequestSpec
		path     string
		keys     []string // every key, in no order
		chat     bool
		stream   bool
		ignore   bool
		temp     *float64
		maxToken int
	}{
		{
			name:     "completions streamed, ignore_eos, temperature 0",
			spec:     RequestSpec{API: "completions", Model: "m", Stream: true, MaxTokens: measure.Fixed(64), IgnoreEOS: true, Temperature: ptr(0.0)},
			path:     "/v1/completions",
			keys:     []string{"model", "prompt", "max_tokens", "stream", "stream_options", "ignore_eos", "temperature"},
			stream:   true,
			ignore:   true,
			temp:     ptr(0.0),
			maxToken: 64,
		},
		{
			name:     "completions not streamed, defaults",
			spec:     RequestSpec{Model: "m", MaxTokens: measure.Fixed(5)},
			path:     "/v1/completions",
			keys:     []string{"model", "prompt", "max_tokens", "stream"},
			maxToken: 5,
		},
		{
			name:     "chat streamed, temperature 0.7",
			spec:     RequestSpec{API: "chat", Model: "m", Stream: true, MaxTokens: measure.Fixed(32), Temperature: ptr(0.7)},
			path:     "/v1/chat/completions",
			keys:     []string{"model", "messages", "max_tokens", "stream", "stream_options", "temperature"},
			chat:     true,
			stream:   true,
			temp:     ptr(0.7),
			maxToken: 32,
		},
		{
			name:     "chat not streamed, ignore_eos",
			spec:     RequestSpec{API: "chat", Model: "m", MaxTokens: measure.Fixed(8), IgnoreEOS: true},
			path:     "/v1/chat/completions",
			keys:     []string{"model", "messages", "max_tokens", "stream", "ignore_eos"},
			chat:     true,
			ignore:   true,
			maxToken: 8,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Prompts = Synthetic(measure.Fixed(16), 1)
			tt.spec.Model = "Qwen/Qwen2.5-1.5B-Instruct"
			b, err := NewBodies(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if b.Path() != tt.path || b.Stream() != tt.stream || b.Len() != maxBodies {
				t.Fatalf("Path %q Stream %t Len %d, want %q %t %d", b.Path(), b.Stream(), b.Len(), tt.path, tt.stream, maxBodies)
			}
			for seq := range uint64(3) {
				w, all := decodeBody(t, b.Body(seq))
				if len(all) != len(tt.keys) {
					t.Errorf("body has keys %v, want %v", keys(all), tt.keys)
				}
				for _, k := range tt.keys {
					if _, ok := all[k]; !ok {
						t.Errorf("body lacks %q: %s", k, b.Body(seq))
					}
				}
				if *w.Model != "Qwen/Qwen2.5-1.5B-Instruct" {
					t.Errorf("model %q", *w.Model)
				}
				if mt := b.entry(seq).maxTokens; *w.MaxTokens != tt.maxToken || mt != tt.maxToken {
					t.Errorf("max_tokens %d, entry %d, want %d", *w.MaxTokens, mt, tt.maxToken)
				}
				if *w.Stream != tt.stream {
					t.Errorf("stream %t, want %t", *w.Stream, tt.stream)
				}
				if tt.stream && (w.StreamOptions == nil || w.StreamOptions.IncludeUsage == nil || !*w.StreamOptions.IncludeUsage) {
					t.Errorf("stream_options %s, want {\"include_usage\":true}", all["stream_options"])
				}
				if tt.ignore != (w.IgnoreEOS != nil && *w.IgnoreEOS) {
					t.Errorf("ignore_eos %s, want %t", all["ignore_eos"], tt.ignore)
				}
				if (tt.temp == nil) != (w.Temperature == nil) || tt.temp != nil && *tt.temp != *w.Temperature {
					t.Errorf("temperature %s, want %v", all["temperature"], tt.temp)
				}
				// The request id, then the synthetic prompt IDTokens words shorter.
				want := reqID(0, seq) + strings.Join(strings.Fields(tt.spec.Prompts.Prompt(seq).Text)[:16-IDTokens], " ")
				if tt.chat {
					var msgs []struct{ Role, Content string }
					if err := json.Unmarshal(w.Messages, &msgs); err != nil {
						t.Fatal(err)
					}
					if len(msgs) != 1 || msgs[0].Role != "user" || msgs[0].Content != want {
						t.Errorf("messages %s, want one user message %q", w.Messages, want)
					}
				} else if *w.Prompt != want {
					t.Errorf("prompt %q, want %q", *w.Prompt, want)
				}
				if n := len(strings.Fields(tt.spec.Prompts.Prompt(seq).Text)); n != 16 {
					t.Errorf("synthetic prompt has %d words, want 16", n)
				}
			}
		})
	}
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestBodiesReproducible(t *testing.T) {
	spec := func(seed uint64) RequestSpec {
		return RequestSpec{
			API: "chat", Model: "m", Stream: true, Seed: seed,
			MaxTokens: measure.Lengths{Kind: "uniform", Min: 10, Max: 100},
			Prompts:   Synthetic(measure.Lengths{Kind: "uniform", Min: 5, Max: 50}, 3),
		}
	}
	a, _ := NewBodies(spec(1))
	b, _ := NewBodies(spec(1))
	c, _ := NewBodies(spec(2))
	sameAsOtherSeed := 0
	for seq := range uint64(2 * maxBodies) {
		if !bytes.Equal(a.Body(seq), b.Body(seq)) {
			t.Fatalf("seq %d: two pools from the same spec differ", seq)
		}
		if bytes.Equal(a.Body(seq), c.Body(seq)) {
			sameAsOtherSeed++
		}
		// Request seq+Len shares its pool body with seq, not its id.
		next := seq + uint64(a.Len())
		if bytes.Equal(a.Body(seq), a.Body(next)) ||
			!bytes.Equal(withoutID(t, a.Body(seq), 0, seq), withoutID(t, a.Body(next), 0, next)) {
			t.Fatalf("seq %d and %d: want the same pool body with different ids", seq, next)
		}
		w, _ := decodeBody(t, a.Body(seq))
		if *w.MaxTokens < 10 || *w.MaxTokens > 100 || *w.MaxTokens != a.entry(seq).maxTokens {
			t.Fatalf("seq %d: max_tokens %d (entry %d), want 10..100", seq, *w.MaxTokens, a.entry(seq).maxTokens)
		}
	}
	// Synthetic prompts depend on the source's seed, max_tokens on the spec's.
	if sameAsOtherSeed > maxBodies/5 {
		t.Errorf("seed 2 gives %d of %d bodies identical to seed 1", sameAsOtherSeed, 2*maxBodies)
	}
	// Every request's body is its own, past the pool size too.
	distinct := map[string]bool{}
	for seq := range uint64(2 * maxBodies) {
		distinct[string(a.Body(seq))] = true
	}
	if len(distinct) != 2*maxBodies {
		t.Errorf("%d distinct bodies for %d requests", len(distinct), 2*maxBodies)
	}
}

// reqID is the request id that starts the prompt of request seq of stage.
func reqID(stage int, seq uint64) string { return fmt.Sprintf("[r%02x.%08x] ", stage, seq) }

// withoutID checks that body holds the id of (stage, seq) once and returns
// it without.
func withoutID(t testing.TB, body []byte, stage int, seq uint64) []byte {
	t.Helper()
	id := []byte(reqID(stage, seq))
	if n := bytes.Count(body, id); n != 1 {
		t.Fatalf("body of stage %d seq %d holds its id %q %d times: %s", stage, seq, id, n, body)
	}
	return bytes.Replace(body, id, nil, 1)
}

func TestBodiesFromPromptFile(t *testing.T) {
	src, err := LoadPrompts("testdata/prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	// Fixed output lengths: one body per prompt, in a seeded order.
	chat, err := NewBodies(RequestSpec{API: "chat", Model: "m", MaxTokens: measure.Fixed(4), Prompts: src, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	comp, err := NewBodies(RequestSpec{API: "completions", Model: "m", MaxTokens: measure.Fixed(4), Prompts: src, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Len() != 4 || comp.Len() != 4 {
		t.Fatalf("pool sizes %d and %d, want 4 (one per prompt)", chat.Len(), comp.Len())
	}
	wantMsgs := map[string]bool{
		`[{"role":"user","content":"Explain KEDA in one sentence."}]`:                                    true,
		`[{"role":"system","content":"You are terse."},{"role":"user","content":"What is an HPA?"}]`:     true, // as is
		`[{"role":"user","content":"Say \"hi\" <twice> & stop."}]`:                                       true,
		`[{"role":"user","content":[{"type":"text","text":"Describe"},{"type":"text","text":"vLLM."}]}]`: true,
	}
	wantPrompts := map[string]bool{
		"Explain KEDA in one sentence.":     true,
		"You are terse.\n\nWhat is an HPA?": true, // joined
		`Say "hi" <twice> & stop.`:          true,
		"Describe\nvLLM.":                   true,
	}
	for seq := range uint64(4) {
		// The id starts the first user message's text (after a system
		// message, in the first text part) and the completions prompt.
		id := reqID(0, seq)
		if b := chat.Body(seq); !bytes.Contains(b, []byte(`{"role":"user","content":"`+id)) &&
			!bytes.Contains(b, []byte(`{"role":"user","content":[{"type":"text","text":"`+id)) {
			t.Errorf("chat body %d: the id %q does not start the user message: %s", seq, id, b)
		}
		if c, _ := decodeBody(t, comp.Body(seq)); !strings.HasPrefix(*c.Prompt, id) {
			t.Errorf("completions body %d: prompt %q does not start with the id %q", seq, *c.Prompt, id)
		}
		w, _ := decodeBody(t, withoutID(t, chat.Body(seq), 0, seq))
		if !wantMsgs[string(w.Messages)] {
			t.Errorf("chat body %d messages %s not expected", seq, w.Messages)
		}
		delete(wantMsgs, string(w.Messages))
		c, _ := decodeBody(t, withoutID(t, comp.Body(seq), 0, seq))
		if !wantPrompts[*c.Prompt] {
			t.Errorf("completions body %d prompt %q not expected", seq, *c.Prompt)
		}
		delete(wantPrompts, *c.Prompt)
	}
	if len(wantMsgs)+len(wantPrompts) != 0 {
		t.Errorf("prompts never used: %v %v", wantMsgs, wantPrompts)
	}
	if !bytes.Contains(comp.Body(0), []byte("<")) && !bytes.Contains(comp.Body(1), []byte("<")) &&
		!bytes.Contains(comp.Body(2), []byte("<")) && !bytes.Contains(comp.Body(3), []byte("<")) {
		t.Error(`"<" is HTML-escaped in the bodies`)
	}
	// Varying output lengths: the pool is full size.
	varied, _ := NewBodies(RequestSpec{Model: "m", MaxTokens: measure.Lengths{Kind: "uniform", Min: 1, Max: 8}, Prompts: src})
	if varied.Len() != maxBodies {
		t.Errorf("pool size %d, want %d", varied.Len(), maxBodies)
	}
}

func TestNewBodiesErrors(t *testing.T) {
	src := Synthetic(measure.Fixed(4), 1)
	tests := []struct {
		name string
		spec RequestSpec
		want string
	}{
		{"unknown api", RequestSpec{API: "embeddings", Model: "m", MaxTokens: measure.Fixed(1), Prompts: src}, `api "embeddings"`},
		{"no model", RequestSpec{MaxTokens: measure.Fixed(1), Prompts: src}, "no model"},
		{"no prompts", RequestSpec{Model: "m", MaxTokens: measure.Fixed(1)}, "no prompt source"},
		{"zero max_tokens", RequestSpec{Model: "m", Prompts: src}, "max_tokens: 0"},
		{"bad uniform", RequestSpec{Model: "m", MaxTokens: measure.Lengths{Kind: "uniform", Min: 5, Max: 2}, Prompts: src}, "want 1 ≤ min ≤ max"},
		{"bad kind", RequestSpec{Model: "m", MaxTokens: measure.Lengths{Kind: "zipf"}, Prompts: src}, `unknown kind "zipf"`},
		{"marker in a prompt", RequestSpec{Model: "m", MaxTokens: measure.Fixed(1), Prompts: listSource{{Text: "a" + marker}}}, "stands for the request id"},
		{"marker in chat messages", RequestSpec{API: APIChat, Model: "m", MaxTokens: measure.Fixed(1),
			Prompts: listSource{{Text: "x", Messages: json.RawMessage(`[{"role":"user","content":"U ` + string(encodedMarker) + `"}]`)}}}, "stands for the request id"},
		{"marker in the model", RequestSpec{API: APIChat, Model: "m" + marker, MaxTokens: measure.Fixed(1), Prompts: src}, "stands for the request id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewBodies(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// promptOf decodes the prompt of a body: the completions prompt, or the
// chat messages as sent.
func promptOf(t testing.TB, body []byte) string {
	t.Helper()
	var w struct {
		Prompt   *string         `json:"prompt"`
		Messages json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if w.Prompt != nil {
		return *w.Prompt
	}
	var msgs []struct{ Content string }
	if err := json.Unmarshal(w.Messages, &msgs); err != nil || len(msgs) == 0 {
		t.Fatalf("messages %s: %v", w.Messages, err)
	}
	return msgs[0].Content
}

// TestBodiesUniqueAtStart checks that no two requests share the start of
// their prompt, past the pool size and across stages, so a server's prefix
// cache cannot serve one from another's blocks; and that a request's body
// is the same every time.
func TestBodiesUniqueAtStart(t *testing.T) {
	for _, api := range []string{APICompletions, APIChat} {
		t.Run(api, func(t *testing.T) {
			spec := RequestSpec{API: api, Model: "m", Stream: true, MaxTokens: measure.Fixed(8), Prompts: Synthetic(measure.Fixed(64), 1), Seed: 1}
			b, err := NewBodies(spec)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := NewBodies(spec)
			if b.Len() != maxBodies {
				t.Fatalf("Len %d, want %d", b.Len(), maxBodies)
			}
			starts := map[string]string{}
			seqs := []uint64{1<<32 - 1}
			for seq := range uint64(3*maxBodies + 5) {
				seqs = append(seqs, seq)
			}
			for _, stage := range []int{0, 1, 255} {
				for _, seq := range seqs {
					body := b.StageBody(stage, seq)
					p := promptOf(t, body)
					id := reqID(stage, seq)
					if !strings.HasPrefix(p, id) {
						t.Fatalf("stage %d seq %d: prompt %.40q does not start with %q", stage, seq, p, id)
					}
					start := p[:len(id)+8]
					if prev, ok := starts[start]; ok {
						t.Fatalf("stage %d seq %d starts like %s: %q", stage, seq, prev, start)
					}
					starts[start] = fmt.Sprintf("stage %d seq %d", stage, seq)
					if !bytes.Equal(body, again.StageBody(stage, seq)) {
						t.Fatalf("stage %d seq %d: two pools from the same spec differ", stage, seq)
					}
					if stage == 0 && !bytes.Equal(body, b.Body(seq)) {
						t.Fatalf("seq %d: Body is not StageBody(0, seq)", seq)
					}
				}
			}
			// The caller owns the slice.
			body := b.StageBody(1, 7)
			body[0] = 'x'
			if b.StageBody(1, 7)[0] != '{' {
				t.Error("StageBody returned the pool's own bytes")
			}
		})
	}
}

// TestBodiesSyntheticLength checks that a synthetic prompt in a body makes
// room for the id: IDTokens words fewer, at least one.
func TestBodiesSyntheticLength(t *testing.T) {
	for _, tt := range []struct{ tokens, words int }{{128, 128 - IDTokens}, {IDTokens + 1, 1}, {4, 1}} {
		b, err := NewBodies(RequestSpec{Model: "m", MaxTokens: measure.Fixed(8), Prompts: Synthetic(measure.Fixed(tt.tokens), 1)})
		if err != nil {
			t.Fatal(err)
		}
		for seq := range uint64(5) {
			p := strings.TrimPrefix(promptOf(t, b.Body(seq)), reqID(0, seq))
			if n := len(strings.Fields(p)); n != tt.words {
				t.Errorf("%d tokens: body %d has %d words after the id, want %d", tt.tokens, seq, n, tt.words)
			}
		}
	}
}

// TestBodiesEveryPromptOfALongFile checks that a prompt file with more than
// 1024 prompts is used whole, not cut to the first 1024 of its permutation.
func TestBodiesEveryPromptOfALongFile(t *testing.T) {
	const n = 1500
	var file bytes.Buffer
	for i := range n {
		fmt.Fprintf(&file, "{\"prompt\":\"question %d\"}\n", i)
	}
	path := t.TempDir() + "/long.jsonl"
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := LoadPrompts(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range []measure.Lengths{measure.Fixed(4), {Kind: "uniform", Min: 1, Max: 8}} {
		b, err := NewBodies(RequestSpec{Model: "m", MaxTokens: mt, Prompts: src, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() != n {
			t.Errorf("max_tokens %s: Len %d, want %d (one body per prompt)", mt, b.Len(), n)
		}
		seen := map[string]bool{}
		for seq := range uint64(n) {
			seen[strings.TrimPrefix(promptOf(t, b.Body(seq)), reqID(0, seq))] = true
		}
		if len(seen) != n {
			t.Errorf("max_tokens %s: %d of the %d prompts used in the first %d requests", mt, len(seen), n, n)
		}
	}
}

// TestBodiesPoolCap checks that a prompt file whose bodies do not fit in
// the pool is an error that says what to do, not a silent sample.
func TestBodiesPoolCap(t *testing.T) {
	big := Prompt{Text: strings.Repeat("tokens ", (1<<20)/7)} // 1 MiB a prompt
	ps := make([]Prompt, maxPoolBytes>>20+8)
	for i := range ps {
		ps[i] = big
	}
	_, err := NewBodies(RequestSpec{Model: "m", MaxTokens: measure.Fixed(4), Prompts: listSource(ps)})
	if err == nil || !strings.Contains(err.Error(), "64 MiB") || !strings.Contains(err.Error(), "request.prompts_sample: 31") {
		t.Errorf("err = %v, want the 64 MiB cap and what to do", err)
	}
	// A sample that fits is no error, and uses that many prompts.
	b, err := NewBodies(RequestSpec{Model: "m", MaxTokens: measure.Fixed(4), Prompts: listSource(ps), Sample: 8})
	if err != nil || b.Len() != 8 || !strings.Contains(b.String(), "a sample of 8") {
		t.Errorf("sample of 8: %v, %d bodies (%s)", err, b.Len(), b)
	}
}

// TestBodiesSample checks that prompts_sample takes a seeded sample of a
// prompt file: that many distinct prompts, the same ones for the same seed,
// others for another.
func TestBodiesSample(t *testing.T) {
	ps := make([]Prompt, 500)
	for i := range ps {
		ps[i] = Prompt{Text: fmt.Sprintf("question %d", i)}
	}
	used := func(seed uint64, mt measure.Lengths) map[string]bool {
		b, err := NewBodies(RequestSpec{Model: "m", MaxTokens: mt, Prompts: listSource(ps), Sample: 20, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for seq := range uint64(3000) {
			seen[strings.TrimPrefix(promptOf(t, b.Body(seq)), reqID(0, seq))] = true
		}
		return seen
	}
	varying := measure.Lengths{Kind: "uniform", Min: 1, Max: 8}
	a, again, other := used(1, measure.Fixed(4)), used(1, varying), used(2, measure.Fixed(4))
	if len(a) != 20 || len(again) != 20 || len(other) != 20 {
		t.Fatalf("distinct prompts used: %d, %d, %d; want 20 each", len(a), len(again), len(other))
	}
	same := 0
	for p := range a {
		if !again[p] {
			t.Errorf("seed 1 sampled %q once and not the second time", p)
		}
		if other[p] {
			same++
		}
	}
	if same == 20 {
		t.Error("seeds 1 and 2 sampled the same prompts")
	}
}

// listSource is a PromptSource from a slice.
type listSource []Prompt

func (l listSource) Prompt(i uint64) Prompt { return l[i%uint64(len(l))] }
func (l listSource) Len() int               { return len(l) }
func (l listSource) String() string         { return "list" }

// TestBodiesIDInMessages checks where the id goes in chat messages given as
// they are: the first user message with text, whatever the key order.
func TestBodiesIDInMessages(t *testing.T) {
	id := reqID(0, 0)
	tests := []struct {
		name, msgs, want string // want: the messages with the id; "" for an error
	}{
		{"system first", `[{"role":"system","content":"S"},{"role":"user","content":"U"}]`,
			`[{"role":"system","content":"S"},{"role":"user","content":"` + id + `U"}]`},
		{"content before role", `[{"content":"S","role":"system"},{"content":"U","role":"user"}]`,
			`[{"content":"S","role":"system"},{"content":"` + id + `U","role":"user"}]`},
		{"empty user message skipped", `[{"role":"user","content":""},{"role":"assistant","content":"A"},{"role":"user","content":"U"}]`,
			`[{"role":"user","content":""},{"role":"assistant","content":"A"},{"role":"user","content":"` + id + `U"}]`},
		{"parts: the first text part", `[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}},{"text":"T","type":"text"},{"type":"text","text":"V"}]}]`,
			`[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}},{"text":"` + id + `T","type":"text"},{"type":"text","text":"V"}]}]`},
		{"no user: the first message with text", `[{"role":"system","content":[]},{"role":"system","content":"S"}]`,
			`[{"role":"system","content":[]},{"role":"system","content":"` + id + `S"}]`},
		{"no text at all", `[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]`, ""},
		{"spaces and a key given twice", `[ {"role" : "user", "content" : "A", "content" : "U"} ]`,
			`[{"role":"user","content":"A","content":"` + id + `U"}]`},
		{"escapes kept", `[{"role":"user","content":"\u00e9\n"}]`, `[{"role":"user","content":"` + id + `\u00e9\n"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBodies(RequestSpec{API: APIChat, Model: "m", MaxTokens: measure.Fixed(4),
				Prompts: listSource{{Text: "x", Messages: json.RawMessage(tt.msgs)}}})
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "no text to start with the request id") {
					t.Errorf("err = %v, want no text for the id", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w, _ := decodeBody(t, b.Body(0)); string(w.Messages) != tt.want {
				t.Errorf("messages\n%s\nwant\n%s", w.Messages, tt.want)
			}
		})
	}
}
