package promql

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Supported describes the subset, for messages.
const Supported = `metric{label="v", …} with =, !=, =~, !~ matchers, optionally inside sum, avg, min, max or count [by|without (label, …)] (…)`

// Error says where a query leaves the subset (or does not parse at all).
type Error struct {
	Query string
	Line  int    // 1-based line of the query (queries from YAML may span lines)
	Col   int    // 1-based column on that line, in characters, where the problem starts
	Msg   string // what is wrong there
}

func (e *Error) Error() string {
	return e.Short() + "; scrape mode supports " + Supported
}

// Short is the place and the problem, without what the subset supports.
func (e *Error) Short() string {
	if e.Line > 1 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("column %d: %s", e.Col, e.Msg)
}

// Agg is an aggregation operator of the subset.
type Agg string

// The aggregations of the subset; None is a bare selector.
const (
	None  Agg = ""
	Sum   Agg = "sum"
	Avg   Agg = "avg"
	Min   Agg = "min"
	Max   Agg = "max"
	Count Agg = "count"
)

// MatchOp is a label matcher's operator.
type MatchOp string

// The matcher operators.
const (
	Eq    MatchOp = "="
	Neq   MatchOp = "!="
	Re    MatchOp = "=~"
	NotRe MatchOp = "!~"
)

// Matcher is one label matcher. Label "__name__" matches the metric name.
type Matcher struct {
	Label string
	Op    MatchOp
	Value string
	re    *regexp.Regexp // for =~ and !~, anchored
	num   float64        // Value as a number, for = and != on le and quantile
	isNum bool
	at    int // where the quoted Value starts in the query
	end   int // and where it ends
}

// Matches reports whether a label value (a missing label is "") passes.
func (m *Matcher) Matches(v string) bool {
	switch m.Op {
	case Eq, Neq:
		eq := v == m.Value
		if !eq && m.isNum {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				eq = f == m.num
			}
		}
		return eq == (m.Op == Eq)
	case Re:
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

// Query is a parsed query of the subset: one selector, optionally inside
// one aggregation.
type Query struct {
	Agg      Agg      // the aggregation around the selector; None for a bare selector
	Without  bool     // Grouping drops these labels (otherwise it keeps only them)
	Grouping []string // nil: no by or without clause
	Name     string   // the metric name the selector looks up (a __name__="x" matcher becomes Name); "" to scan every series
	Matchers []Matcher

	nameAt, nameEnd int // where Name stands in the query: the bare name or the quoted string
}

func isAgg(s string) bool {
	switch Agg(s) {
	case Sum, Avg, Min, Max, Count:
		return true
	}
	return false
}

// aggregations PromQL has and the subset does not.
var otherAggs = map[string]bool{
	"topk": true, "bottomk": true, "quantile": true, "stddev": true, "stdvar": true,
	"count_values": true, "group": true, "limitk": true, "limit_ratio": true,
}

type parser struct {
	s   string
	pos int // byte offset
}

// Parse reads a query of the subset. Anything outside it gets an *Error
// that gives the line and column where the unsupported part starts and
// says what it is.
func Parse(q string) (*Query, error) {
	p := &parser{s: q}
	return p.parse()
}

func (p *parser) errAt(pos int, format string, args ...any) error {
	before := p.s[:pos]
	lineStart := strings.LastIndexByte(before, '\n') + 1
	return &Error{
		Query: p.s,
		Line:  strings.Count(before, "\n") + 1,
		Col:   utf8.RuneCountInString(before[lineStart:]) + 1,
		Msg:   fmt.Sprintf(format, args...),
	}
}

func (p *parser) eof() bool { return p.pos >= len(p.s) }

func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.pos]
}

func (p *parser) skipSpace() {
	for !p.eof() {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		case '#': // a comment runs to the end of the line
			for !p.eof() && p.s[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func isMetricStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}
func isMetricChar(c byte) bool  { return isMetricStart(c) || c >= '0' && c <= '9' }
func isLabelStart(c byte) bool  { return isMetricStart(c) && c != ':' }
func isLabelChar(c byte) bool   { return isMetricChar(c) && c != ':' }
func isQuote(c byte) bool       { return c == '"' || c == '\'' || c == '`' }
func isNumberStart(c byte) bool { return c >= '0' && c <= '9' || c == '.' }

func (p *parser) ident(start, char func(byte) bool) string {
	if p.eof() || !start(p.s[p.pos]) {
		return ""
	}
	b := p.pos
	for !p.eof() && char(p.s[p.pos]) {
		p.pos++
	}
	return p.s[b:p.pos]
}

// keywordAhead reports whether the identifier at pos is kw (case-insensitive).
func (p *parser) keywordAhead(kw string) bool {
	end := p.pos
	for end < len(p.s) && isMetricChar(p.s[end]) {
		end++
	}
	return strings.EqualFold(p.s[p.pos:end], kw)
}

func (p *parser) parse() (*Query, error) {
	p.skipSpace()
	if p.eof() {
		return nil, p.errAt(0, "empty query")
	}
	q := &Query{}
	start := p.pos
	c := p.peek()
	switch {
	case c == '{':
		if err := p.selector(q, "", 0); err != nil {
			return nil, err
		}
	case isMetricStart(c):
		id := p.ident(isMetricStart, isMetricChar)
		lower := strings.ToLower(id)
		p.skipSpace()
		switch {
		case isAgg(lower): // a keyword, as in PromQL: "sum x" is an error, not a metric
			q.Agg = Agg(lower)
			if err := p.aggregation(q, start); err != nil {
				return nil, err
			}
		case otherAggs[lower]: // a keyword too
			return nil, p.errAt(start, "aggregation %s is not supported", lower)
		case p.peek() == '(':
			return nil, p.errAt(start, "function %s(…) is not supported (it needs Prometheus)", id)
		default:
			if err := p.notKeyword(lower, start); err != nil {
				return nil, err
			}
			if err := p.selector(q, id, start); err != nil {
				return nil, err
			}
		}
	default:
		return nil, p.unexpected()
	}
	p.skipSpace()
	if !p.eof() {
		return nil, p.unexpected()
	}
	return q, nil
}

// notKeyword rejects a word PromQL reads as a keyword where a metric name
// should stand.
func (p *parser) notKeyword(lower string, at int) error {
	if keywords[lower] || labelLists[lower] {
		return p.errAt(at, "%s is a PromQL keyword, not a metric name", lower)
	}
	return nil
}

// aggregation parses what follows the operator: [grouping] ( selector ) [grouping].
func (p *parser) aggregation(q *Query, opPos int) error {
	if p.keywordAhead("by") || p.keywordAhead("without") {
		if err := p.grouping(q); err != nil {
			return err
		}
		p.skipSpace()
	}
	if p.peek() != '(' {
		return p.errAt(p.pos, "expected ( after %s", q.Agg)
	}
	p.pos++
	p.skipSpace()
	inner := p.pos
	switch c := p.peek(); {
	case c == '{':
		if err := p.selector(q, "", 0); err != nil {
			return err
		}
	case isMetricStart(c):
		id := p.ident(isMetricStart, isMetricChar)
		p.skipSpace()
		lower := strings.ToLower(id)
		if isAgg(lower) || otherAggs[lower] {
			return p.errAt(inner, "%s inside %s(…) is not supported: one aggregation over one selector", lower, q.Agg)
		}
		if p.peek() == '(' || p.keywordAhead("by") || p.keywordAhead("without") {
			return p.errAt(inner, "function %s(…) is not supported (it needs Prometheus)", id)
		}
		if err := p.notKeyword(lower, inner); err != nil {
			return err
		}
		if err := p.selector(q, id, inner); err != nil {
			return err
		}
	case c == ')':
		return p.errAt(p.pos, "%s(…) needs a selector", q.Agg)
	default:
		return p.unexpected()
	}
	p.skipSpace()
	switch p.peek() {
	case ')':
		p.pos++
	case ',':
		return p.errAt(p.pos, "%s takes one argument", q.Agg)
	default:
		if p.eof() {
			return p.errAt(opPos, "%s( is not closed", q.Agg)
		}
		return p.unexpected()
	}
	p.skipSpace()
	if p.keywordAhead("by") || p.keywordAhead("without") {
		if q.Grouping != nil {
			return p.errAt(p.pos, "grouping given twice")
		}
		return p.grouping(q)
	}
	return nil
}

// grouping parses by|without ( label, … ).
func (p *parser) grouping(q *Query) error {
	kw := strings.ToLower(p.ident(isMetricStart, isMetricChar))
	q.Without = kw == "without"
	q.Grouping = []string{}
	p.skipSpace()
	if p.peek() != '(' {
		return p.errAt(p.pos, "expected ( after %s", kw)
	}
	p.pos++
	for {
		p.skipSpace()
		if p.peek() == ')' {
			p.pos++
			return nil
		}
		name, err := p.labelName()
		if err != nil {
			return err
		}
		q.Grouping = append(q.Grouping, name)
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.pos++
		case ')':
		default:
			if p.eof() {
				return p.errAt(p.pos, "%s ( is not closed", kw)
			}
			return p.errAt(p.pos, "expected , or ) in %s (…)", kw)
		}
	}
}

// labelName reads a bare or quoted label name.
func (p *parser) labelName() (string, error) {
	if isQuote(p.peek()) {
		return p.str()
	}
	if name := p.ident(isLabelStart, isLabelChar); name != "" {
		return name, nil
	}
	if p.eof() {
		return "", p.errAt(p.pos, "expected a label name")
	}
	return "", p.errAt(p.pos, "expected a label name, found %q", p.rune())
}

// selector parses [ { matchers } ] after an optional metric name already read.
func (p *parser) selector(q *Query, name string, nameAt int) error {
	q.Name, q.nameAt, q.nameEnd = name, nameAt, nameAt+len(name)
	if name != "" {
		p.skipSpace()
		if p.peek() != '{' {
			return nil
		}
	}
	brace := p.pos
	p.pos++ // {
	for {
		p.skipSpace()
		if p.peek() == '}' {
			p.pos++
			break
		}
		at := p.pos
		label, err := p.labelName()
		if err != nil {
			return err
		}
		end := p.pos
		p.skipSpace()
		if (p.peek() == ',' || p.peek() == '}') && isQuote(p.s[at]) { // {"metric.name", …}
			if q.Name != "" || hasNameMatcher(q.Matchers) {
				return p.errAt(at, "metric name given twice")
			}
			q.Name, q.nameAt, q.nameEnd = label, at, end
		} else {
			m, err := p.matcher(label, at)
			if err != nil {
				return err
			}
			if m.Label == "__name__" && q.Name != "" {
				return p.errAt(at, "metric name given twice")
			}
			q.Matchers = append(q.Matchers, m)
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
		default:
			if p.eof() {
				return p.errAt(brace, "{ is not closed")
			}
			return p.errAt(p.pos, "expected , or } between matchers, found %q", p.rune())
		}
	}
	if q.Name == "" {
		// Promote __name__="x" to a lookup by name; PromQL also needs one
		// matcher that does not match the empty string.
		nonEmpty := false
		for i, m := range q.Matchers {
			if !m.Matches("") {
				nonEmpty = true
			}
			if m.Label == "__name__" && m.Op == Eq && q.Name == "" {
				q.Name, q.nameAt, q.nameEnd = m.Value, m.at, m.end
				q.Matchers = append(q.Matchers[:i:i], q.Matchers[i+1:]...)
			}
		}
		if !nonEmpty {
			return p.errAt(brace, "a selector needs a metric name or a matcher that does not match the empty string")
		}
	}
	return nil
}

func hasNameMatcher(ms []Matcher) bool {
	for _, m := range ms {
		if m.Label == "__name__" {
			return true
		}
	}
	return false
}

// matcher parses op "value" after the label name.
func (p *parser) matcher(label string, labelPos int) (Matcher, error) {
	m := Matcher{Label: label}
	opPos := p.pos
	switch {
	case strings.HasPrefix(p.s[p.pos:], "=~"):
		m.Op = Re
	case strings.HasPrefix(p.s[p.pos:], "!~"):
		m.Op = NotRe
	case strings.HasPrefix(p.s[p.pos:], "!="):
		m.Op = Neq
	case strings.HasPrefix(p.s[p.pos:], "=="):
		return m, p.errAt(opPos, `== in a matcher: use = (or =~, !=, !~)`)
	case strings.HasPrefix(p.s[p.pos:], "="):
		m.Op = Eq
	default:
		if p.eof() {
			return m, p.errAt(labelPos, "matcher on %s has no operator and value", label)
		}
		return m, p.errAt(opPos, "expected =, !=, =~ or !~ after %s, found %q", label, p.rune())
	}
	p.pos += len(m.Op)
	p.skipSpace()
	valPos := p.pos
	if !isQuote(p.peek()) {
		return m, p.errAt(valPos, "expected a quoted value after %s%s", label, m.Op)
	}
	v, err := p.str()
	if err != nil {
		return m, err
	}
	m.Value, m.at, m.end = v, valPos, p.pos
	switch m.Op {
	case Re, NotRe:
		re, err := regexp.Compile("^(?s:" + v + ")$")
		if err != nil {
			return m, p.errAt(valPos, "bad regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		m.re = re
	default:
		if label == "le" || label == "quantile" {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				m.num, m.isNum = f, true
			}
		}
	}
	return m, nil
}

// str reads a quoted string: "…" or '…' with Go escapes, `…` raw.
func (p *parser) str() (string, error) {
	start := p.pos
	quote := p.s[p.pos]
	p.pos++
	if quote == '`' {
		end := strings.IndexByte(p.s[p.pos:], '`')
		if end < 0 {
			return "", p.errAt(start, "string is not closed")
		}
		v := p.s[p.pos : p.pos+end]
		p.pos += end + 1
		return v, nil
	}
	var b strings.Builder
	rest := p.s[p.pos:]
	for {
		if rest == "" || rest[0] == '\n' {
			return "", p.errAt(start, "string is not closed")
		}
		if rest[0] == quote {
			p.pos = len(p.s) - len(rest) + 1
			return b.String(), nil
		}
		r, _, tail, err := strconv.UnquoteChar(rest, quote)
		if err != nil {
			return "", p.errAt(len(p.s)-len(rest), "bad escape in string")
		}
		b.WriteRune(r)
		rest = tail
	}
}

// rune is the character at pos, for messages.
func (p *parser) rune() string {
	r, _ := utf8.DecodeRuneInString(p.s[p.pos:])
	return string(r)
}

// unexpected explains the token at pos in terms of what the subset lacks.
func (p *parser) unexpected() error {
	if p.eof() {
		return p.errAt(p.pos, "unexpected end of query")
	}
	rest := p.s[p.pos:]
	c := rest[0]
	switch {
	case c == '[':
		return p.errAt(p.pos, "range selector […] is not supported: scrape mode sees one instant")
	case c == '@' || p.keywordAhead("offset"):
		return p.errAt(p.pos, "offset and @ modifiers are not supported: scrape mode reads the pages now")
	case p.keywordAhead("and") || p.keywordAhead("or") || p.keywordAhead("unless"):
		at := p.pos
		return p.errAt(at, "set operator %s is not supported", strings.ToLower(p.ident(isMetricStart, isMetricChar)))
	case strings.ContainsRune("+-*/%^<>=!", rune(c)):
		op := string(c)
		if len(rest) > 1 && (rest[1] == '=') {
			op = rest[:2]
		}
		if (c == '+' || c == '-') && p.pos+1 < len(p.s) && isNumberStart(p.s[p.pos+1]) && p.onlySpaceBefore() {
			return p.errAt(p.pos, "number literals are not supported")
		}
		return p.errAt(p.pos, "binary operator %s is not supported", op)
	case isNumberStart(c):
		return p.errAt(p.pos, "number literals are not supported")
	case isQuote(c):
		return p.errAt(p.pos, "string literals are not supported")
	case c == '(':
		return p.errAt(p.pos, "parentheses are only supported around an aggregation's selector")
	case c == ')':
		return p.errAt(p.pos, "unbalanced )")
	}
	return p.errAt(p.pos, "unexpected %q", p.rune())
}

func (p *parser) onlySpaceBefore() bool { return strings.TrimSpace(p.s[:p.pos]) == "" }
