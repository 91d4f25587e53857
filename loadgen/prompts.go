package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/scaleout/scaleout/measure"
)

// Prompt is one prompt as a source gives it.
type Prompt struct {
	// Text is the prompt for /v1/completions. For a messages source it is the
	// messages' text contents joined by blank lines.
	Text string
	// Messages is the chat messages array exactly as the source gave it
	// (compact JSON), or nil for a plain prompt: chat then sends
	// [{"role":"user","content":Text}].
	Messages json.RawMessage
}

// PromptSource gives prompts by index, deterministically: the same source
// (same file, or same lengths and seed) returns the same Prompt(i) every time.
// Implementations are safe for concurrent use.
type PromptSource interface {
	// Prompt returns prompt i. A finite source wraps around (i mod Len).
	Prompt(i uint64) Prompt
	// Len is the number of distinct prompts, or 0 when every index gives a
	// new one (synthetic prompts).
	Len() int
	// String describes the source: "synthetic 128 tokens", "prompts.jsonl (420 prompts)".
	String() string
}

// --- synthetic --------------------------------------------------------------

// words are common English words that the usual BPE tokenizers (GPT-2,
// cl100k, Llama 3, Qwen2, Mistral) encode as one token each when preceded by
// a space, so N of them make a prompt of about N tokens. About: the chat
// template, a BOS token or a tokenizer that splits one of them adds a few.
// The server's usage is what gets recorded, never this estimate.
var words = [...]string{
	"the", "of", "and", "to", "in", "is", "you", "that", "it", "he",
	"was", "for", "on", "are", "as", "with", "his", "they", "at", "be",
	"this", "have", "from", "or", "one", "had", "by", "word", "but", "not",
	"what", "all", "were", "we", "when", "your", "can", "said", "there", "use",
	"an", "each", "which", "she", "do", "how", "their", "if", "will", "up",
	"other", "about", "out", "many", "then", "them", "these", "so", "some", "her",
	"would", "make", "like", "him", "into", "time", "has", "look", "two", "more",
	"write", "go", "see", "number", "no", "way", "could", "people", "my", "than",
	"first", "water", "been", "call", "who", "its", "now", "find", "long", "down",
	"day", "did", "get", "come", "made", "may", "part", "over", "new", "sound",
	"take", "only", "little", "work", "know", "place", "year", "live", "me", "back",
	"give", "most", "very", "after", "thing", "our", "just", "name", "good", "man",
	"think", "say", "great", "where", "help", "through", "much", "before", "line", "right",
}

type synthetic struct {
	lengths measure.Lengths
	seed    uint64
}

var _ PromptSource = synthetic{}

// Synthetic makes prompts of about N tokens each, N drawn from lengths: N
// common words, each one token for the usual tokenizers (approximate: the
// server's usage is what gets recorded). Prompt(i) depends only on (seed, i),
// and different indexes give different word sequences. That alone does not
// keep a server's prefix cache out of the load: Bodies renders a pool of
// prompts once and reuses them, and a request that repeats an earlier prompt
// is served from the cache. What keeps every request a miss is the request
// id Bodies puts at the start of every prompt (see Bodies.StageBody); in a
// body the prompt is IDTokens words shorter to make room for it.
func Synthetic(lengths measure.Lengths, seed uint64) PromptSource {
	return synthetic{lengths: lengths, seed: seed}
}

func (s synthetic) Prompt(i uint64) Prompt { return s.prompt(i, 0) }

// prompt is Prompt(i) with `drop` fewer words (at least one word): the
// first words of Prompt(i), the same length draw.
func (s synthetic) prompt(i uint64, drop int) Prompt {
	r := rand.New(rand.NewPCG(s.seed, i))
	n := max(s.lengths.Sample(r)-drop, 1)
	var b strings.Builder
	b.Grow(n * 6)
	for k := range n {
		if k > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return Prompt{Text: b.String()}
}

func (s synthetic) Len() int { return 0 }

func (s synthetic) String() string { return "synthetic " + s.lengths.String() + " tokens" }

// --- files ------------------------------------------------------------------

// PromptFileError is a problem in a prompt file, at a line (0 when the
// problem is the whole file).
type PromptFileError struct {
	File   string
	Line   int
	Reason string
}

func (e *PromptFileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return e.File + ": " + e.Reason
}

type filePrompts struct {
	name    string
	prompts []Prompt
}

var _ PromptSource = (*filePrompts)(nil)

func (f *filePrompts) Prompt(i uint64) Prompt { return f.prompts[i%uint64(len(f.prompts))] }
func (f *filePrompts) Len() int               { return len(f.prompts) }
func (f *filePrompts) String() string {
	return fmt.Sprintf("%s (%d prompts)", f.name, len(f.prompts))
}

// maxPromptLine bounds one JSONL line.
const maxPromptLine = 64 << 20

// LoadPrompts reads a prompt file, in file order:
//   - JSONL: one object a line, {"prompt":"…"} or {"messages":[{"role":…,"content":…},…]};
//     blank lines are skipped;
//   - ShareGPT: a JSON array of {"conversations":[{"from":"human","value":"…"},…]}; the
//     first human turn of each conversation is the prompt, conversations without one
//     are skipped.
//
// The format is told by the first byte ('[' for ShareGPT). Errors are
// *PromptFileError, "file:line: reason".
func LoadPrompts(path string) (PromptSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	name := filepath.Base(path)
	br := bufio.NewReaderSize(f, 1<<16)
	first, err := firstByte(br)
	if err == io.EOF {
		return nil, &PromptFileError{File: path, Reason: "empty file: no prompts"}
	} else if err != nil {
		return nil, err
	}
	var ps []Prompt
	if first == '[' {
		ps, err = readShareGPT(path, br)
	} else {
		ps, err = readJSONL(path, br)
	}
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, &PromptFileError{File: path, Reason: "no prompts"}
	}
	return &filePrompts{name: name, prompts: ps}, nil
}

// skipBOM drops a UTF-8 byte order mark at the start of br.
func skipBOM(br *bufio.Reader) {
	if b, err := br.Peek(3); err == nil && string(b) == "\xEF\xBB\xBF" {
		_, _ = br.Discard(3)
	}
}

func firstByte(br *bufio.Reader) (byte, error) {
	skipBOM(br)
	for n := 1; n <= br.Size(); n++ {
		b, err := br.Peek(n)
		if err != nil {
			return 0, err
		}
		if c := b[n-1]; !isSpace(c) {
			return c, nil
		}
	}
	return 0, io.EOF
}

func readJSONL(path string, br *bufio.Reader) ([]Prompt, error) {
	var ps []Prompt
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long := append([]byte(nil), b...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxPromptLine {
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			if len(long) > maxPromptLine {
				return nil, &PromptFileError{File: path, Line: line, Reason: "line longer than 64 MiB"}
			}
			b = long
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		b = bytes.TrimSpace(b)
		if len(b) > 0 {
			p, reason := parsePromptLine(b)
			if reason != "" {
				return nil, &PromptFileError{File: path, Line: line, Reason: reason}
			}
			ps = append(ps, p)
		}
		if err == io.EOF {
			return ps, nil
		}
	}
}

func parsePromptLine(b []byte) (Prompt, string) {
	var v struct {
		Prompt   *string         `json:"prompt"`
		Messages json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Prompt{}, "not a JSON object: " + jsonReason(err)
	}
	switch {
	case v.Prompt != nil && v.Messages != nil:
		return Prompt{}, `has both "prompt" and "messages"; give one`
	case v.Prompt != nil:
		if strings.TrimSpace(*v.Prompt) == "" {
			return Prompt{}, `"prompt" is empty`
		}
		return Prompt{Text: *v.Prompt}, ""
	case v.Messages != nil:
		return parseMessages(v.Messages)
	default:
		return Prompt{}, `needs "prompt" (a string) or "messages" (an array of {"role","content"})`
	}
}

// parseMessages checks a messages array and joins its text for completions.
func parseMessages(raw json.RawMessage) (Prompt, string) {
	var msgs []struct {
		Role    *string         `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return Prompt{}, `"messages" must be an array of {"role","content"} objects`
	}
	if len(msgs) == 0 {
		return Prompt{}, `"messages" is empty`
	}
	texts := make([]string, 0, len(msgs))
	for k, m := range msgs {
		if m.Role == nil || *m.Role == "" {
			return Prompt{}, fmt.Sprintf(`messages[%d] has no "role"`, k)
		}
		t, ok := contentText(m.Content)
		if !ok {
			return Prompt{}, fmt.Sprintf(`messages[%d].content must be a string or an array of parts`, k)
		}
		if t != "" {
			texts = append(texts, t)
		}
	}
	if len(texts) == 0 {
		return Prompt{}, `"messages" has no text content`
	}
	var c bytes.Buffer
	if err := json.Compact(&c, raw); err != nil {
		return Prompt{}, `"messages" is not valid JSON`
	}
	return Prompt{Text: strings.Join(texts, "\n\n"), Messages: c.Bytes()}, ""
}

// contentText returns the text of a message content: a string, or the text
// parts of an array of {"type":"text","text":…} parts.
func contentText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", false
	}
	var ts []string
	for _, p := range parts {
		if p.Type == "text" && p.Text != "" {
			ts = append(ts, p.Text)
		}
	}
	return strings.Join(ts, "\n"), true
}

func readShareGPT(path string, r io.Reader) ([]Prompt, error) {
	cr := &countingReader{r: r}
	dec := json.NewDecoder(cr)
	fail := func(err error) error {
		off := dec.InputOffset() // the start of the value that failed
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			off = se.Offset - 1 // the byte that broke it
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			off = cr.off - 1 // the last byte of the file
		}
		return &PromptFileError{File: path, Line: lineAt(path, off), Reason: "ShareGPT: " + jsonReason(err)}
	}
	if _, err := dec.Token(); err != nil { // '['
		return nil, fail(err)
	}
	var ps []Prompt
	for dec.More() {
		var conv struct {
			Conversations []struct {
				From  string `json:"from"`
				Value string `json:"value"`
			} `json:"conversations"`
		}
		if err := dec.Decode(&conv); err != nil {
			return nil, fail(err)
		}
		for _, turn := range conv.Conversations {
			if (turn.From == "human" || turn.From == "user") && strings.TrimSpace(turn.Value) != "" {
				ps = append(ps, Prompt{Text: turn.Value})
				break
			}
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, fail(err)
	}
	return ps, nil
}

// countingReader counts the bytes read, so an error at the end of the file
// can be placed at its last byte.
type countingReader struct {
	r   io.Reader
	off int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.off += int64(n)
	return n, err
}

// lineAt is the 1-based line holding offset off of the prompt file at path,
// an offset as the decoder saw it (after a BOM). It reads the file again up
// to off: an error is rare, and keeping every line's offset on the way would
// cost memory for the whole file. 0 (no line) when the file cannot be read
// again.
func lineAt(path string, off int64) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	skipBOM(br)
	line := 1
	r := io.LimitReader(br, max(off, 0))
	buf := make([]byte, 1<<16)
	for {
		n, err := r.Read(buf)
		line += bytes.Count(buf[:n], []byte{'\n'})
		if err != nil {
			if err != io.EOF {
				return 0
			}
			return line
		}
	}
}

// jsonReason shortens an encoding/json error to its reason.
func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error()
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%s: want %s, got %s", te.Field, te.Type, te.Value)
		}
		return fmt.Sprintf("want %s, got %s", te.Type, te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of file"
	}
	return err.Error()
}
