package loadgen

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/scaleout/scaleout/measure"
)

func TestSyntheticPrompts(t *testing.T) {
	tests := []struct {
		name     string
		lengths  measure.Lengths
		min, max int
	}{
		{"fixed 128", measure.Fixed(128), 128, 128},
		{"fixed 1", measure.Fixed(1), 1, 1},
		{"uniform 10..20", measure.Lengths{Kind: "uniform", Min: 10, Max: 20}, 10, 20},
		{"normal 50±10 in 30..70", measure.Lengths{Kind: "normal", Mean: 50, StdDev: 10, Min: 30, Max: 70}, 30, 70},
	}
	vocab := make(map[string]bool, len(words))
	for _, w := range words {
		vocab[w] = true
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Synthetic(tt.lengths, 11)
			again := Synthetic(tt.lengths, 11)
			other := Synthetic(tt.lengths, 12)
			if s.Len() != 0 {
				t.Errorf("Len() = %d, want 0 (unbounded)", s.Len())
			}
			differs := 0
			for i := range uint64(50) {
				p := s.Prompt(i)
				if p.Messages != nil {
					t.Fatalf("prompt %d has messages", i)
				}
				ws := strings.Split(p.Text, " ")
				if len(ws) < tt.min || len(ws) > tt.max {
					t.Errorf("prompt %d has %d words, want %d..%d", i, len(ws), tt.min, tt.max)
				}
				for _, w := range ws {
					if !vocab[w] {
						t.Fatalf("prompt %d: word %q is not from the one-token vocabulary", i, w)
					}
				}
				if again.Prompt(i).Text != p.Text {
					t.Fatalf("prompt %d differs between two sources with the same seed", i)
				}
				if other.Prompt(i).Text != p.Text {
					differs++
				}
			}
			if tt.min > 1 && differs < 45 {
				t.Errorf("seed 12 gives the same prompt as seed 11 for %d of 50 indexes", 50-differs)
			}
		})
	}
	if got := Synthetic(measure.Fixed(128), 1).String(); got != "synthetic 128 tokens" {
		t.Errorf("String() = %q", got)
	}
}

func TestWordsAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range words {
		if seen[w] || w == "" || strings.ContainsAny(w, " \t\n") {
			t.Errorf("word %q is repeated, empty or has white space", w)
		}
		seen[w] = true
	}
}

func TestLoadPromptsJSONL(t *testing.T) {
	src, err := LoadPrompts("testdata/prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != 4 {
		t.Fatalf("Len() = %d, want 4 (the blank line is skipped)", src.Len())
	}
	want := []struct {
		text     string
		messages string
	}{
		{"Explain KEDA in one sentence.", ""},
		{"You are terse.\n\nWhat is an HPA?", `[{"role":"system","content":"You are terse."},{"role":"user","content":"What is an HPA?"}]`},
		{`Say "hi" <twice> & stop.`, ""},
		{"Describe\nvLLM.", `[{"role":"user","content":[{"type":"text","text":"Describe"},{"type":"text","text":"vLLM."}]}]`},
	}
	for i, w := range want {
		p := src.Prompt(uint64(i))
		if p.Text != w.text || string(p.Messages) != w.messages {
			t.Errorf("prompt %d = {%q, %s}, want {%q, %s}", i, p.Text, p.Messages, w.text, w.messages)
		}
	}
	if p := src.Prompt(5); p.Text != want[1].text {
		t.Errorf("Prompt(5) = %q, want prompt 1 (wraps around)", p.Text)
	}
	if got := src.String(); got != "prompts.jsonl (4 prompts)" {
		t.Errorf("String() = %q", got)
	}
}

func TestLoadPromptsShareGPT(t *testing.T) {
	src, err := LoadPrompts("testdata/sharegpt.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"What is queue depth?", "Why scale on waiting requests?"}
	if src.Len() != len(want) {
		t.Fatalf("Len() = %d, want %d", src.Len(), len(want))
	}
	for i, w := range want {
		if p := src.Prompt(uint64(i)); p.Text != w || p.Messages != nil {
			t.Errorf("prompt %d = %q (messages %s), want %q", i, p.Text, p.Messages, w)
		}
	}
}

func TestLoadPromptsErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		path   string
		line   int
		reason string // the error must contain it
	}{
		{"empty prompt", "testdata/prompts-bad.jsonl", 3, `"prompt" is empty`},
		{"not JSON", write("a.jsonl", "{\"prompt\":\"ok\"}\nprompt: no\n"), 2, "not a JSON object"},
		{"both keys", write("b.jsonl", `{"prompt":"x","messages":[{"role":"user","content":"y"}]}`), 1, `has both "prompt" and "messages"`},
		{"neither key", write("c.jsonl", "\n\n{\"text\":\"x\"}\n"), 3, `needs "prompt"`},
		{"prompt not a string", write("d.jsonl", `{"prompt":42}`), 1, "not a JSON object: prompt: want string, got number"},
		{"messages not an array", write("e.jsonl", `{"messages":"hi"}`), 1, `"messages" must be an array`},
		{"message without role", write("f.jsonl", `{"messages":[{"content":"hi"}]}`), 1, `messages[0] has no "role"`},
		{"empty messages", write("g.jsonl", `{"messages":[]}`), 1, `"messages" is empty`},
		{"sharegpt syntax", "testdata/sharegpt-bad.json", 6, "ShareGPT: invalid character"},
		{"sharegpt cut", write("h.json", "[\n{\"conversations\":[\n"), 2, "ShareGPT: unexpected end of file"},
		{"sharegpt after a BOM", write("k.json", "\xEF\xBB\xBF[\n{\"conversations\":\n[\n}"), 3, "ShareGPT: invalid character '}'"},
		{"empty file", write("i.jsonl", "\n \n"), 0, "empty file"},
		{"no human turn", write("j.json", `[{"conversations":[{"from":"gpt","value":"x"}]}]`), 0, "no prompts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadPrompts(tt.path)
			var pe *PromptFileError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *PromptFileError", err)
			}
			if pe.Line != tt.line || !strings.Contains(pe.Reason, tt.reason) {
				t.Errorf("got line %d reason %q, want line %d reason containing %q", pe.Line, pe.Reason, tt.line, tt.reason)
			}
			prefix := tt.path + ":"
			if tt.line > 0 {
				prefix = tt.path + ":" + strconv.Itoa(tt.line) + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
	if _, err := LoadPrompts(filepath.Join(dir, "missing.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
}

func TestSyntheticLengthDistribution(t *testing.T) {
	// The length drawn for prompt i is the one measure.Lengths.Sample draws
	// from the prompt's own stream: check the mean of a uniform 10..20.
	s := Synthetic(measure.Lengths{Kind: "uniform", Min: 10, Max: 20}, 3)
	sum := 0
	const n = 2000
	for i := range uint64(n) {
		sum += len(strings.Split(s.Prompt(i).Text, " "))
	}
	if mean := float64(sum) / n; mean < 14.7 || mean > 15.3 {
		t.Errorf("mean length %g, want 15 ± 0.3", mean)
	}
}
