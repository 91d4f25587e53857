package loadgen

import "encoding/json"

// This file is a tiny JSON scanner for the hot path: it walks one OpenAI
// chunk in place, without allocating, and finds the three things the timing
// transport needs: whether the chunk carries content, the usage counts, and an
// error message. It validates enough to call a payload malformed (unbalanced
// input, a missing colon, trailing garbage) but is not a full JSON validator.

// chunk is what one SSE payload (or a non-streamed body) says.
type chunk struct {
	content    bool // a choice has a non-empty text, delta.content, delta.reasoning_content or delta.reasoning
	usage      bool // a usage object was present
	prompt     int  // usage.prompt_tokens, -1 when absent
	completion int  // usage.completion_tokens, -1 when absent
	err        bool // {"error":…} or {"object":"error",…}
	// Spans of raw (still escaped) JSON string contents, [start, end) in the
	// scanned bytes; start < 0 when absent.
	errMsg, topMsg, detail span
	flatError              bool // "object":"error"
}

type span struct{ start, end int }

var noSpan = span{-1, -1}

func (c *chunk) reset() {
	*c = chunk{prompt: -1, completion: -1, errMsg: noSpan, topMsg: noSpan, detail: noSpan}
}

// message returns the error message the chunk carries, unescaped; "" if none.
// It allocates: only the rare error path calls it.
func (c *chunk) message(b []byte) string {
	for _, s := range []span{c.errMsg, c.topMsg, c.detail} {
		if s.start >= 0 {
			return unescape(b, s)
		}
	}
	return ""
}

// unescape decodes the JSON string whose contents are b[s.start:s.end].
func unescape(b []byte, s span) string {
	raw := b[s.start-1 : s.end+1] // with its quotes
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return string(b[s.start:s.end])
	}
	return out
}

type scanner struct {
	b   []byte
	bad bool
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) ws(i int) int {
	for i < len(s.b) && isSpace(s.b[i]) {
		i++
	}
	return i
}

// str scans the string starting at b[i] == '"' and returns the span of its
// contents and the index after the closing quote.
func (s *scanner) str(i int) (span, int) {
	if i >= len(s.b) || s.b[i] != '"' {
		s.bad = true
		return noSpan, len(s.b)
	}
	for j := i + 1; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			j++
		case '"':
			return span{i + 1, j}, j + 1
		}
	}
	s.bad = true
	return noSpan, len(s.b)
}

// skip skips the value at b[i] and returns the index after it.
func (s *scanner) skip(i int) int {
	if i >= len(s.b) {
		s.bad = true
		return i
	}
	switch s.b[i] {
	case '"':
		_, i = s.str(i)
		return i
	case '{', '[':
		depth := 0
		for i < len(s.b) {
			switch s.b[i] {
			case '"':
				_, i = s.str(i)
				if s.bad {
					return i
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		s.bad = true
		return i
	default: // number, true, false, null
		j := i
		for j < len(s.b) {
			c := s.b[j]
			if c == ',' || c == '}' || c == ']' || isSpace(c) {
				break
			}
			j++
		}
		if j == i {
			s.bad = true
		}
		return j
	}
}

// member advances to the next member of an object. i is just after '{'
// (first) or just after the previous value. It returns the key, the index of
// the value and true, or, at the closing brace, the index after it and false.
func (s *scanner) member(i int, first bool) ([]byte, int, bool) {
	i = s.ws(i)
	if i >= len(s.b) {
		s.bad = true
		return nil, i, false
	}
	if s.b[i] == '}' {
		return nil, i + 1, false
	}
	if !first {
		if s.b[i] != ',' {
			s.bad = true
			return nil, i, false
		}
		i = s.ws(i + 1)
	}
	k, i := s.str(i)
	if s.bad {
		return nil, i, false
	}
	i = s.ws(i)
	if i >= len(s.b) || s.b[i] != ':' {
		s.bad = true
		return nil, i, false
	}
	return s.b[k.start:k.end], s.ws(i + 1), true
}

// elem advances to the next element of an array, like member.
func (s *scanner) elem(i int, first bool) (int, bool) {
	i = s.ws(i)
	if i >= len(s.b) {
		s.bad = true
		return i, false
	}
	if s.b[i] == ']' {
		return i + 1, false
	}
	if !first {
		if s.b[i] != ',' {
			s.bad = true
			return i, false
		}
		i = s.ws(i + 1)
		if i >= len(s.b) {
			s.bad = true
			return i, false
		}
	}
	return i, true
}

// nonEmptyString reports whether the value at i is a string with content, and
// returns the index after the value.
func (s *scanner) nonEmptyString(i int) (bool, int) {
	if i < len(s.b) && s.b[i] == '"' {
		sp, j := s.str(i)
		return !s.bad && sp.end > sp.start, j
	}
	return false, s.skip(i)
}

// stringSpan returns the span of the string at i (noSpan for another value)
// and the index after the value.
func (s *scanner) stringSpan(i int) (span, int) {
	if i < len(s.b) && s.b[i] == '"' {
		return s.str(i)
	}
	return noSpan, s.skip(i)
}

// integer reads the number at i (its integer part; -1 for anything else) and
// returns the index after the value.
func (s *scanner) integer(i int) (int, int) {
	n, j, digits := 0, i, 0
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		if n < 1<<40 {
			n = n*10 + int(s.b[j]-'0')
		}
		j++
		digits++
	}
	end := s.skip(i)
	if digits == 0 {
		return -1, end
	}
	return n, end
}

// parseChunk scans one JSON object into c. It reports false when b is not a
// well-formed object.
func parseChunk(b []byte, c *chunk) bool {
	c.reset()
	s := scanner{b: b}
	i := s.ws(0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i++
	for first := true; ; first = false {
		key, v, ok := s.member(i, first)
		if !ok {
			i = v
			break
		}
		switch string(key) {
		case "choices":
			i = s.choices(v, c)
		case "usage":
			i = s.usage(v, c)
		case "error":
			i = s.errorValue(v, c)
		case "object":
			var sp span
			sp, i = s.stringSpan(v)
			if sp.start >= 0 && string(b[sp.start:sp.end]) == "error" {
				c.flatError = true
			}
		case "message":
			c.topMsg, i = s.stringSpan(v)
		case "detail":
			c.detail, i = s.stringSpan(v)
		default:
			i = s.skip(v)
		}
		if s.bad {
			return false
		}
	}
	if s.bad || s.ws(i) != len(b) {
		return false
	}
	if c.flatError {
		c.err = true
	}
	return true
}

func (s *scanner) choices(i int, c *chunk) int {
	if i >= len(s.b) || s.b[i] != '[' {
		return s.skip(i)
	}
	i++
	for first := true; ; first = false {
		v, ok := s.elem(i, first)
		if !ok {
			return v
		}
		if s.b[v] != '{' {
			if i = s.skip(v); s.bad {
				return i
			}
			continue
		}
		i = v + 1
		for firstKey := true; ; firstKey = false {
			key, w, ok := s.member(i, firstKey)
			if !ok {
				i = w
				break
			}
			switch string(key) {
			case "text":
				var has bool
				has, i = s.nonEmptyString(w)
				c.content = c.content || has
			case "delta":
				i = s.delta(w, c)
			default:
				i = s.skip(w)
			}
			if s.bad {
				return i
			}
		}
		if s.bad {
			return i
		}
	}
}

func (s *scanner) delta(i int, c *chunk) int {
	if i >= len(s.b) || s.b[i] != '{' {
		return s.skip(i)
	}
	i++
	for first := true; ; first = false {
		key, v, ok := s.member(i, first)
		if !ok {
			return v
		}
		switch string(key) {
		case "content", "reasoning_content", "reasoning":
			var has bool
			has, i = s.nonEmptyString(v)
			c.content = c.content || has
		default:
			i = s.skip(v)
		}
		if s.bad {
			return i
		}
	}
}

func (s *scanner) usage(i int, c *chunk) int {
	if i >= len(s.b) || s.b[i] != '{' {
		return s.skip(i) // null
	}
	c.usage = true
	i++
	for first := true; ; first = false {
		key, v, ok := s.member(i, first)
		if !ok {
			return v
		}
		switch string(key) {
		case "prompt_tokens":
			c.prompt, i = s.integer(v)
		case "completion_tokens":
			c.completion, i = s.integer(v)
		default:
			i = s.skip(v)
		}
		if s.bad {
			return i
		}
	}
}

func (s *scanner) errorValue(i int, c *chunk) int {
	if i >= len(s.b) {
		s.bad = true
		return i
	}
	switch s.b[i] {
	case '"':
		c.err = true
		c.errMsg, i = s.str(i)
		return i
	case '{':
	default:
		return s.skip(i) // null: no error
	}
	c.err = true
	i++
	for first := true; ; first = false {
		key, v, ok := s.member(i, first)
		if !ok {
			return v
		}
		if string(key) == "message" {
			c.errMsg, i = s.stringSpan(v)
		} else {
			i = s.skip(v)
		}
		if s.bad {
			return i
		}
	}
}
