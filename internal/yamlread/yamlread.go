// Package yamlread reads YAML files node by node (go.yaml.in/yaml/v4) and
// reports every problem with its file, line, column and field path. The
// scenario loader and the ScaledObject manifest reader both read with it.
package yamlread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v4"

	"github.com/scaleout/scaleout/internal/spell"
)

// Error is one problem in a file (or in a flag that overrides it). It
// prints as "file:line:col: field: message", the way compilers do, so
// editors can jump to it.
type Error struct {
	File  string // the file, or "flag" for a command-line override
	Line  int    // 1-based; 0 when the problem has no place (a missing field)
	Col   int    // 1-based; 0 when unknown
	Field string // the field path, e.g. load[1].rate
	Msg   string // what is wrong and, where there is one, the fix
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, one a line. A reader reports
// them all at once so that one edit fixes them all.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Documents parses data into the root nodes of its YAML documents, the
// empty (or null) ones left out. A syntax error is returned as Errors holding one
// Error at its place.
func Documents(file string, data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var roots []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return roots, nil
		}
		if err != nil {
			return nil, Errors{syntaxError(file, err)}
		}
		if len(doc.Content) > 0 && !IsNull(doc.Content[0]) {
			roots = append(roots, Deref(doc.Content[0]))
		}
	}
}

func syntaxError(file string, err error) *Error {
	var le *yaml.LoadError
	if errors.As(err, &le) && le.Mark.Line > 0 {
		return &Error{File: file, Line: le.Mark.Line, Col: le.Mark.Column, Msg: "not valid YAML: " + le.Message}
	}
	return &Error{File: file, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// Reader collects the problems met while nodes of one file are read,
// instead of stopping at the first.
type Reader struct {
	File     string
	errs     Errors
	reported map[*yaml.Node]bool
}

// Failf records a problem at node n (nil: no place) in field.
func (r *Reader) Failf(n *yaml.Node, field, format string, args ...any) {
	e := &Error{File: r.File, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
		if r.reported == nil {
			r.reported = map[*yaml.Node]bool{}
		}
		r.reported[n] = true
	}
	r.errs = append(r.errs, e)
}

// Reported tells whether a problem was recorded at n.
func (r *Reader) Reported(n *yaml.Node) bool { return r.reported[n] }

// Len is the number of problems recorded so far.
func (r *Reader) Len() int { return len(r.errs) }

// Err returns the problems in file order, as Errors, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	sort.SliceStable(r.errs, func(i, j int) bool {
		a, b := r.errs[i], r.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return r.errs
}

// Mapping is a YAML mapping read strictly: every key must be asked for
// (Get), and Finish reports the others as unknown, with the nearest known
// key as a hint.
type Mapping struct {
	r     *Reader
	path  string
	vals  map[string]*yaml.Node
	keys  map[string]*yaml.Node
	order []string
	asked []string
}

// Mapping starts reading n (nil or null: an empty mapping) as the mapping
// at path. A key given twice is reported.
func (r *Reader) Mapping(n *yaml.Node, path string) *Mapping {
	m := &Mapping{r: r, path: path, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	if n == nil || IsNull(n) {
		return m
	}
	if n.Kind != yaml.MappingNode {
		r.Failf(n, path, "want a mapping (key: value lines), got %s", Describe(n))
		return m
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := m.vals[k.Value]; dup {
			r.Failf(k, Join(path, k.Value), "given twice (the first is on line %d)", m.keys[k.Value].Line)
			continue
		}
		m.vals[k.Value], m.keys[k.Value] = Deref(v), k
		m.order = append(m.order, k.Value)
	}
	return m
}

// Get returns the value of key, or nil when it is absent or null.
func (m *Mapping) Get(key string) *yaml.Node {
	m.asked = append(m.asked, key)
	v := m.vals[key]
	if v == nil || IsNull(v) {
		return nil
	}
	return v
}

// Given tells whether key is written, even with no value.
func (m *Mapping) Given(key string) bool { return m.vals[key] != nil }

// Key is the node of key itself (nil when absent), to place problems with
// a key that has no value.
func (m *Mapping) Key(key string) *yaml.Node { return m.keys[key] }

// Keys are the mapping's keys in file order.
func (m *Mapping) Keys() []string { return m.order }

// Finish reports every key that no Get asked for.
func (m *Mapping) Finish() {
	for _, k := range m.order {
		if slices.Contains(m.asked, k) {
			continue
		}
		msg := "unknown field"
		if s := spell.Closest(k, m.asked); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		} else {
			msg += fmt.Sprintf(" (known here: %s)", strings.Join(m.asked, ", "))
		}
		m.r.Failf(m.keys[k], Join(m.path, k), "%s", msg)
	}
}

// Get returns the value at keys under n, read leniently: nil when a key
// is absent or a node on the way is not a mapping. For documents whose
// other fields are not the reader's business (a Kubernetes manifest).
func Get(n *yaml.Node, keys ...string) *yaml.Node {
	for _, key := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var v *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				v = Deref(n.Content[i+1])
				break
			}
		}
		n = v
	}
	return n
}

// Join is the field path of key under path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Deref follows aliases to the node they name.
func Deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// IsNull tells whether n is a null (~, null, or nothing after the colon).
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// Describe names what n is, for "want X, got Y" messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

// Scalar returns the text of a scalar node, or reports what it got instead.
func (r *Reader) Scalar(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		r.Failf(n, field, "want a single value, got %s", Describe(n))
		return "", false
	}
	return n.Value, true
}

// Bool reads true/yes/on or false/no/off.
func (r *Reader) Bool(n *yaml.Node, field string) bool {
	s, ok := r.Scalar(n, field)
	if !ok {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true
	case "false", "no", "off":
		return false
	}
	r.Failf(n, field, "%q is not true or false", s)
	return false
}

// Int reads a whole number (1_000 allowed) of at least lo.
func (r *Reader) Int(n *yaml.Node, field string, lo int) int {
	s, ok := r.Scalar(n, field)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil {
		r.Failf(n, field, "%q is not a whole number", s)
		return 0
	}
	if v < lo {
		r.Failf(n, field, "%d is below the smallest allowed, %d", v, lo)
	}
	return v
}

// Float reads a finite number.
func (r *Reader) Float(n *yaml.Node, field string) float64 {
	s, ok := r.Scalar(n, field)
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		r.Failf(n, field, "%q is not a number", s)
		return 0
	}
	return v
}
