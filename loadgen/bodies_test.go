package loadgen

import (
	"bytes"
	"encoding/json"
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
				if *w.MaxTokens != tt.maxToken || b.MaxTokens(seq) != tt.maxToken {
					t.Errorf("max_tokens %d, MaxTokens() %d, want %d", *w.MaxTokens, b.MaxTokens(seq), tt.maxToken)
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
				want := tt.spec.Prompts.Prompt(seq).Text
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
				if n := len(strings.Fields(want)); n != 16 {
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
		if !bytes.Equal(a.Body(seq), a.Body(seq+uint64(a.Len()))) {
			t.Fatalf("seq %d: Body is not periodic in the pool size", seq)
		}
		w, _ := decodeBody(t, a.Body(seq))
		if *w.MaxTokens < 10 || *w.MaxTokens > 100 || *w.MaxTokens != a.MaxTokens(seq) {
			t.Fatalf("seq %d: max_tokens %d (MaxTokens %d), want 10..100", seq, *w.MaxTokens, a.MaxTokens(seq))
		}
	}
	// Synthetic prompts depend on the source's seed, max_tokens on the spec's.
	if sameAsOtherSeed > maxBodies/5 {
		t.Errorf("seed 2 gives %d of %d bodies identical to seed 1", sameAsOtherSeed, 2*maxBodies)
	}
	distinct := map[string]bool{}
	for seq := range uint64(a.Len()) {
		distinct[string(a.Body(seq))] = true
	}
	if len(distinct) != maxBodies {
		t.Errorf("%d distinct bodies in the pool, want %d", len(distinct), maxBodies)
	}
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
		w, _ := decodeBody(t, chat.Body(seq))
		if !wantMsgs[string(w.Messages)] {
			t.Errorf("chat body %d messages %s not expected", seq, w.Messages)
		}
		delete(wantMsgs, string(w.Messages))
		c, _ := decodeBody(t, comp.Body(seq))
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
