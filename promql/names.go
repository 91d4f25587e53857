package promql

import (
	"strconv"
	"strings"
)

// Ref is one metric name a query's selector uses, and where it stands.
type Ref struct {
	Name       string
	Start, End int  // byte offsets in the query: the bare name, or the quoted string that holds it
	Quoted     bool // the name is a string: {"name"} or {__name__="name"}
}

// Rename returns the query with this reference replaced by name (quoted
// again when the reference is a string).
func (r Ref) Rename(query, name string) string {
	if r.Quoted {
		name = strconv.Quote(name)
	}
	return query[:r.Start] + name + query[r.End:]
}

// Keywords of PromQL that are neither metric names nor followed by "(".
var keywords = map[string]bool{
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "group_left": true, "group_right": true,
}

// Keywords followed by a list of label names.
var labelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// Refs lists, in order, the metric names the selectors of a PromQL
// expression use, inside the subset or not: it reads tokens (names,
// strings, numbers, braces, brackets) and skips function and aggregation
// names, keywords, label lists and ranges, without checking the grammar.
// A selector by regular expression (__name__=~"…") names no metric. It
// never fails: what it cannot read it steps over.
func Refs(q string) []Ref {
	p := &parser{s: q}
	var out []Ref
	for {
		p.skipSpace()
		if p.eof() {
			return out
		}
		start, c := p.pos, p.peek()
		switch {
		case isQuote(c):
			if _, err := p.str(); err != nil {
				return out // a string that is not closed runs to the end
			}
		case c == '[': // a range or a subquery: durations only
			end := strings.IndexByte(q[p.pos:], ']')
			if end < 0 {
				return out
			}
			p.pos += end + 1
		case c == '{':
			out = p.selectorRef(out, "", 0)
		case isNumberStart(c):
			for !p.eof() && (isLabelChar(p.peek()) || p.peek() == '.') {
				p.pos++
			}
		case isMetricStart(c):
			id := p.ident(isMetricStart, isMetricChar)
			lower := strings.ToLower(id)
			p.skipSpace()
			switch {
			case labelLists[lower]:
				if p.peek() == '(' {
					p.skipList()
				}
			case keywords[lower] || isAgg(lower) || otherAggs[lower] || p.peek() == '(':
				// an operator, an aggregation or a function
			default:
				out = p.selectorRef(out, id, start)
			}
		default:
			p.pos++
		}
	}
}

// selectorRef reads the selector at pos (its name, if any, already read
// at nameAt) and appends the name it uses. A selector it cannot read is
// stepped over up to its closing brace.
func (p *parser) selectorRef(out []Ref, name string, nameAt int) []Ref {
	var q Query
	if err := p.selector(&q, name, nameAt); err != nil {
		// Step over the rest of the braces, unless the error came after
		// the closing one.
		for p.pos > 0 && p.s[p.pos-1] != '}' && !p.eof() {
			if isQuote(p.peek()) {
				if _, err := p.str(); err != nil {
					p.pos = len(p.s)
				}
				continue
			}
			p.pos++
		}
		q.Name, q.nameAt, q.nameEnd = name, nameAt, nameAt+len(name) // only a name before the braces is certain
	}
	if q.Name == "" {
		return out
	}
	return append(out, Ref{Name: q.Name, Start: q.nameAt, End: q.nameEnd, Quoted: isQuote(p.s[q.nameAt])})
}

// skipList steps over a parenthesized list of label names.
func (p *parser) skipList() {
	for !p.eof() {
		c := p.peek()
		switch {
		case isQuote(c):
			if _, err := p.str(); err != nil {
				p.pos = len(p.s)
			}
			continue
		case c == ')':
			p.pos++
			return
		}
		p.pos++
	}
}
