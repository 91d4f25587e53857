package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

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
	Sample      int    // a prompt file: use a seeded sample of this many of its prompts (0: all)
	Seed        uint64 // picks prompts and output lengths for the body pool
}

// Pool limits: maxBodies pre-rendered bodies (more for a longer prompt file:
// every prompt gets one), and no more than maxPoolBytes of them: long
// synthetic prompts get a smaller pool (at least one body); a prompt file
// whose bodies do not fit is an error rather than a silent sample.
const (
	maxBodies    = 1024
	maxPoolBytes = 64 << 20
)

// The request id that starts every prompt, so that no two requests of a run
// share a leading token block and a server's prefix cache (vLLM's automatic
// prefix caching) cannot serve one request from another's KV blocks:
// "[r" + two hex digits of the stage + "." + eight hex digits of the sequence
// number + "] ", e.g. "[r01.000012ab] " for stage 1, request 0x12ab. It is
// fixed width, so it is patched into a copy of the pre-rendered body in place.
// It is unique for the first 2³² requests of each of 256 stages (the digits
// wrap beyond). It costs about 8 prompt tokens with tokenizers that group
// digits (cl100k, Llama 3) and about 12 with those that split every digit
// (Qwen2, Llama 2, Mistral): IDTokens.
const (
	idTemplate = "[r00.00000000] "
	idStage    = 2 // index of the stage digits in idTemplate
	idSeq      = 5 // index of the sequence digits
)

// IDTokens is about how many prompt tokens the request id at the start of
// every prompt costs (8 to 12 depending on the tokenizer). Synthetic prompts
// are that many words shorter, so their length stays about what was asked;
// prompts from a file are sent whole, with the id in front.
const IDTokens = 10

// Bodies is a pool of pre-rendered request bodies. It is immutable once
// built and safe for concurrent use: StageBody copies a pool body and
// patches the request's id into it, no JSON encoding happens while the load
// runs.
type Bodies struct {
	api     string
	path    string
	stream  bool
	entries []bodyEntry
	desc    string
}

type bodyEntry struct {
	body      []byte // with idTemplate at idAt
	idAt      int
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
	Model         string         `json:"model"`
	Messages      any            `json:"messages"` // []chatMessage, or a file's json.RawMessage
	MaxTokens     int            `json:"max_tokens"`
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
	IgnoreEOS     bool           `json:"ignore_eos,omitempty"`
	Temperature   *float64       `json:"temperature,omitempty"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// NewBodies renders the body pool: 1024 bodies for synthetic prompts (fewer
// when they are long), one body per prompt for a prompt file with a fixed
// output length, and max(1024, prompts) bodies for a file with varying output
// lengths. Slot k takes the k-th prompt of a seeded permutation of a file's
// prompts (repeating it past the end; synthetic: prompt k, IDTokens words
// shorter) and a max_tokens drawn from spec.MaxTokens; the same spec gives
// byte-identical bodies. Every prompt gets the request id at its start (see
// StageBody). A prompt file whose bodies would take more than 64 MiB is an
// error: every prompt of a file is used or none.
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
	if err := spec.MaxTokens.Validate(); err != nil {
		return nil, fmt.Errorf("loadgen: max_tokens: %w", err)
	}

	r := rand.New(rand.NewPCG(spec.Seed, 0x626f64696573)) // "bodies"
	n := maxBodies
	var perm []int
	l := spec.Prompts.Len()
	if l > 0 {
		perm = r.Perm(l)
		if spec.Sample > 0 && spec.Sample < l {
			perm, l = perm[:spec.Sample], spec.Sample // the seeded permutation's head is the sample
		}
		if !spec.MaxTokens.Varies() || l > n {
			n = l // every prompt once (at least maxBodies bodies when output lengths vary)
		}
	}
	syn, isSyn := spec.Prompts.(synthetic)
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
		var p Prompt
		if isSyn {
			p = syn.prompt(idx, IDTokens) // the id stands in for IDTokens words
		} else {
			p = spec.Prompts.Prompt(idx)
		}
		mt := spec.MaxTokens.Sample(r)
		buf.Reset()
		var err error
		if b.api == APICompletions {
			err = enc.Encode(completionsBody{
				Model: spec.Model, Prompt: marker + p.Text, MaxTokens: mt, Stream: spec.Stream,
				StreamOptions: opts, IgnoreEOS: spec.IgnoreEOS, Temperature: spec.Temperature,
			})
		} else {
			var msgs any
			if p.Messages == nil {
				msgs = []chatMessage{{Role: "user", Content: marker + p.Text}}
			} else if m := markMessages(p.Messages); m != nil {
				msgs = m
			} else {
				return nil, fmt.Errorf("loadgen: prompt %d (%s): no text to start with the request id", idx, spec.Prompts)
			}
			err = enc.Encode(chatBody{
				Model: spec.Model, Messages: msgs, MaxTokens: mt, Stream: spec.Stream,
				StreamOptions: opts, IgnoreEOS: spec.IgnoreEOS, Temperature: spec.Temperature,
			})
		}
		if err != nil {
			return nil, fmt.Errorf("loadgen: rendering body %d: %w", k, err)
		}
		rendered := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		at := bytes.Index(rendered, encodedMarker)
		if bytes.Count(rendered, encodedMarker) != 1 {
			return nil, fmt.Errorf("loadgen: prompt %d (%s) holds the text %q, which stands for the request id while bodies are built", idx, spec.Prompts, marker)
		}
		body := slices.Concat(rendered[:at], []byte(idTemplate), rendered[at+len(encodedMarker):])
		b.entries = append(b.entries, bodyEntry{body: body, idAt: at, maxTokens: mt})
		if total += len(body); total >= maxPoolBytes && k+1 < n {
			if l > 0 && k+1 < l {
				of := fmt.Sprintf("its %d prompts", l)
				if l < spec.Prompts.Len() {
					of = fmt.Sprintf("the %d sampled", l)
				}
				return nil, fmt.Errorf("loadgen: %s: the request bodies of %d of %s already take %d MiB, the most kept in memory: "+
					"use a seeded sample (request.prompts_sample: %d, say) or a smaller file",
					spec.Prompts, k+1, of, maxPoolBytes>>20, min(k/2, 1000))
			}
			break
		}
	}
	src := spec.Prompts.String()
	if l > 0 && l < spec.Prompts.Len() {
		src += fmt.Sprintf(", a sample of %d", l)
	}
	b.desc = fmt.Sprintf("%s %s, %s, max_tokens %s, %d bodies", b.api, spec.Model, src, spec.MaxTokens, len(b.entries))
	if spec.Stream {
		b.desc += ", streamed"
	}
	return b, nil
}

func (b *Bodies) entry(seq uint64) *bodyEntry { return &b.entries[seq%uint64(len(b.entries))] }

// StageBody returns the body of request seq of stage `stage`: pool body
// seq mod Len with the request id "[rSS.QQQQQQQQ] " (stage and seq in hex)
// at the start of its prompt (completions) or of its first user message's
// text (chat; a message before it, such as a shared system prompt, stays
// cacheable as it would in production). The same (stage, seq) gives the
// same bytes. It returns a new slice the caller owns: one allocation and a
// copy, no JSON encoding. Safe for concurrent use.
//
// The id keeps every request of a run distinct at its first tokens, so a
// server's prefix cache cannot turn the load into cache hits. It does not
// tell runs apart: a run repeated with the same seed against a server that
// still holds the previous run's blocks can hit them.
func (b *Bodies) StageBody(stage int, seq uint64) []byte { return b.entry(seq).render(stage, seq) }

// render is StageBody for the entry of seq.
func (e *bodyEntry) render(stage int, seq uint64) []byte {
	out := make([]byte, len(e.body))
	copy(out, e.body)
	putID(out[e.idAt:e.idAt+len(idTemplate)], stage, seq)
	return out
}

// Body returns the body of request seq of stage 0: StageBody(0, seq).
func (b *Bodies) Body(seq uint64) []byte { return b.StageBody(0, seq) }

const hexDigits = "0123456789abcdef"

// putID writes the stage and seq digits into id, a copy of idTemplate.
func putID(id []byte, stage int, seq uint64) {
	s := uint8(stage)
	id[idStage], id[idStage+1] = hexDigits[s>>4], hexDigits[s&15]
	for i := idSeq + 7; i >= idSeq; i-- {
		id[i] = hexDigits[seq&15]
		seq >>= 4
	}
}

// marker stands where the request id goes while a body is encoded; idAt is
// where NewBodies finds it, exactly once, in the encoded body. It starts and
// ends with a NUL, which JSON encodes as \u0000: a prompt that holds it
// anyway is refused rather than given its id in the wrong place.
const marker = "\x00scaleout-request-id\x00"

var encodedMarker = []byte(`\u0000scaleout-request-id\u0000`)

// markMessages returns a chat messages array with the marker at the start
// of the text the request id goes in front of, or nil when it has no text.
func markMessages(msgs json.RawMessage) json.RawMessage {
	s := scanner{b: msgs}
	at := s.idText()
	if at < 0 || s.bad {
		return nil
	}
	return slices.Concat(msgs[:at], encodedMarker, msgs[at:])
}

// idText is the index in a messages array of the text the request id goes
// in front of: that of the first user message with text, else of the first
// message with text (a string content, or the first non-empty "text" part
// of an array); -1 when there is none.
func (s *scanner) idText() int {
	i := s.ws(0)
	if i >= len(s.b) || s.b[i] != '[' {
		return -1
	}
	text := -1
	i++
	for first := true; ; first = false {
		var ok bool
		if i, ok = s.elem(i, first); !ok || s.bad {
			return text
		}
		user := s.isString(s.value(i, "role"), "user")
		if text < 0 || user {
			if t := s.contentText(s.value(i, "content")); t >= 0 {
				if text = t; user {
					return text
				}
			}
		}
		i = s.skip(i)
	}
}

// contentText is the index of the text of the message content at b[i]
// (i < 0: none), or -1.
func (s *scanner) contentText(i int) int {
	if s.nonEmpty(i) {
		return i + 1
	}
	if i < 0 || s.b[i] != '[' {
		return -1
	}
	i++
	for first := true; ; first = false {
		var ok bool
		if i, ok = s.elem(i, first); !ok || s.bad {
			return -1
		}
		if t := s.value(i, "text"); s.isString(s.value(i, "type"), "text") && s.nonEmpty(t) {
			return t + 1
		}
		i = s.skip(i)
	}
}

// value is the index of the value of key in the object at b[i] (the last
// one, as encoding/json reads a key given twice), or -1.
func (s *scanner) value(i int, key string) int {
	if i >= len(s.b) || s.b[i] != '{' {
		return -1
	}
	at := -1
	i++
	for first := true; ; first = false {
		k, v, ok := s.member(i, first)
		if !ok || s.bad {
			return at
		}
		if string(k) == key {
			at = v
		}
		i = s.skip(v)
	}
}

// isString reports whether the value at b[i] (i < 0: none) is the string
// want, as written.
func (s *scanner) isString(i int, want string) bool {
	end := i + 1 + len(want)
	return i >= 0 && end < len(s.b) && s.b[i] == '"' && string(s.b[i+1:end]) == want && s.b[end] == '"'
}

// nonEmpty reports whether the value at b[i] (i < 0: none) is a string
// other than "".
func (s *scanner) nonEmpty(i int) bool {
	return i >= 0 && i+1 < len(s.b) && s.b[i] == '"' && s.b[i+1] != '"'
}

// Path is "/v1/completions" or "/v1/chat/completions".
func (b *Bodies) Path() string { return b.path }

// Stream reports whether the bodies ask for a stream.
func (b *Bodies) Stream() bool { return b.stream }

// Len is the number of pre-rendered bodies in the pool: request seq takes
// body seq mod Len, with its own request id.
func (b *Bodies) Len() int { return len(b.entries) }

// String describes the pool: "chat m, synthetic 128 tokens, max_tokens 64, 1024 bodies, streamed".
func (b *Bodies) String() string { return b.desc }
