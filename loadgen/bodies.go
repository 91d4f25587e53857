package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/scaleout/scaleout/measure"
)

// The two OpenAI-style APIs.
const (
	APICompletions = "completions" // POST /v1/completions with "prompt"
	APIChat        = "chat"        // POST /v1/chat/completions with "messages"
)

// RequestSpec says what every request of a run looks like.
type RequestSpec struct {
	API         string          // "completions" (POST /v1/completions, "prompt") or "chat" (POST /v1/chat/completions, "messages"); "" means completions
	Model       string          // a served model name (an unknown one gets 404)
	Stream      bool            // stream:true plus stream_options:{include_usage:true}
	MaxTokens   measure.Lengths // output length per request
	IgnoreEOS   bool            // sends "ignore_eos": true when set (vLLM: output is exactly max_tokens long)
	Temperature *float64        // nil: not sent
	Prompts     PromptSource
	Seed        uint64 // picks prompts and output lengths for the body pool
}

// Pool limits: at most maxBodies distinct bodies, and no more than
// maxPoolBytes of them (long prompts get a smaller pool, at least one body).
const (
	maxBodies    = 1024
	maxPoolBytes = 64 << 20
)

// Bodies is a pool of pre-rendered request bodies. It is immutable once
// built and safe for concurrent use: Body is a slice lookup, no JSON encoding
// happens while the load runs.
type Bodies struct {
	api     string
	path    string
	stream  bool
	entries []bodyEntry
	desc    string
}

type bodyEntry struct {
	body      []byte
	maxTokens int
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Field order here is the order on the wire.
type completionsBody struct {
	Model         string         `json:"model"`
	Prompt        string         `json:"prompt"`
	MaxTokens     int            `json:"max_tokens"`
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
	IgnoreEOS     bool           `json:"ignore_eos,omitempty"`
	Temperature   *float64       `json:"temperature,omitempty"`
}

type chatBody struct {
	Model         string          `json:"model"`
	Messages      json.RawMessage `json:"messages"`
	MaxTokens     int             `json:"max_tokens"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options,omitempty"`
	IgnoreEOS     bool            `json:"ignore_eos,omitempty"`
	Temperature   *float64        `json:"temperature,omitempty"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// NewBodies renders the body pool: up to 1024 bodies (fewer when prompts are
// long, or when a finite prompt file with fixed output lengths has fewer
// distinct bodies). Slot k takes the k-th prompt of a seeded permutation of a
// file's prompts (synthetic: prompt k) and a max_tokens drawn from
// spec.MaxTokens; the same spec gives byte-identical bodies.
func NewBodies(spec RequestSpec) (*Bodies, error) {
	b := &Bodies{api: spec.API, stream: spec.Stream}
	switch spec.API {
	case "", APICompletions:
		b.api, b.path = APICompletions, "/v1/completions"
	case APIChat:
		b.path = "/v1/chat/completions"
	default:
		return nil, fmt.Errorf("loadgen: api %q: want %q or %q", spec.API, APICompletions, APIChat)
	}
	if spec.Model == "" {
		return nil, errors.New("loadgen: no model: the request needs a served model name")
	}
	if spec.Prompts == nil {
		return nil, errors.New("loadgen: no prompt source")
	}
	if err := checkLengths(spec.MaxTokens); err != nil {
		return nil, fmt.Errorf("loadgen: max_tokens: %w", err)
	}

	r := rand.New(rand.NewPCG(spec.Seed, 0x626f64696573)) // "bodies"
	n := maxBodies
	var perm []int
	if l := spec.Prompts.Len(); l > 0 {
		perm = r.Perm(l)
		if isFixed(spec.MaxTokens) {
			n = min(n, l)
		}
	}
	var opts *streamOptions
	if spec.Stream {
		opts = &streamOptions{IncludeUsage: true}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	total := 0
	for k := range n {
		idx := uint64(k)
		if perm != nil {
			idx = uint64(perm[k%len(perm)])
		}
		p := spec.Prompts.Prompt(idx)
		mt := spec.MaxTokens.Sample(r)
		buf.Reset()
		var err error
		if b.api == APICompletions {
			err = enc.Encode(completionsBody{
				Model: spec.Model, Prompt: p.Text, MaxTokens: mt, Stream: spec.Stream,
				StreamOptions: opts, IgnoreEOS: spec.IgnoreEOS, Temperature: spec.Temperature,
			})
		} else {
			msgs := p.Messages
			if msgs == nil {
				if err = enc.Encode([]chatMessage{{Role: "user", Content: p.Text}}); err == nil {
					msgs = bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
					buf.Reset()
				}
			}
			if err == nil {
				err = enc.Encode(chatBody{
					Model: spec.Model, Messages: msgs, MaxTokens: mt, Stream: spec.Stream,
					StreamOptions: opts, IgnoreEOS: spec.IgnoreEOS, Temperature: spec.Temperature,
				})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("loadgen: rendering body %d: %w", k, err)
		}
		body := bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		b.entries = append(b.entries, bodyEntry{body: body, maxTokens: mt})
		if total += len(body); total >= maxPoolBytes {
			break
		}
	}
	b.desc = fmt.Sprintf("%s %s, %s, max_tokens %s, %d bodies", b.api, spec.Model, spec.Prompts, spec.MaxTokens, len(b.entries))
	if spec.Stream {
		b.desc += ", streamed"
	}
	return b, nil
}

func isFixed(l measure.Lengths) bool {
	return l.Kind != "uniform" && l.Kind != "normal"
}

func checkLengths(l measure.Lengths) error {
	switch l.Kind {
	case "", "fixed":
		if l.Value < 1 {
			return fmt.Errorf("%d: want at least 1", l.Value)
		}
	case "uniform", "normal":
		if l.Min < 1 || l.Max < l.Min {
			return fmt.Errorf("%s: want 1 ≤ min ≤ max", l)
		}
	default:
		return fmt.Errorf("unknown kind %q", l.Kind)
	}
	return nil
}

func (b *Bodies) entry(seq uint64) *bodyEntry { return &b.entries[seq%uint64(len(b.entries))] }

// Body returns the body of request seq: deterministic for seq, shared (do
// not modify it), safe for concurrent use.
func (b *Bodies) Body(seq uint64) []byte { return b.entry(seq).body }

// MaxTokens is the max_tokens the body of request seq asks for.
func (b *Bodies) MaxTokens(seq uint64) int { return b.entry(seq).maxTokens }

// Path is "/v1/completions" or "/v1/chat/completions".
func (b *Bodies) Path() string { return b.path }

// API is "completions" or "chat".
func (b *Bodies) API() string { return b.api }

// Stream reports whether the bodies ask for a stream.
func (b *Bodies) Stream() bool { return b.stream }

// Len is the number of distinct bodies in the pool.
func (b *Bodies) Len() int { return len(b.entries) }

// String describes the pool: "chat m, synthetic 128 tokens, max_tokens 64, 1024 bodies, streamed".
func (b *Bodies) String() string { return b.desc }
