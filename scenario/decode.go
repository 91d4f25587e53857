package scenario

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/scaleout/scaleout/internal/spell"
)

// reader walks a parsed YAML tree and collects every problem it meets with
// its position and field path, instead of stopping at the first.
type reader struct {
	file   string
	errs   Errors
	lookup func(string) (string, bool) // the environment, for ${NAME}
	// secrets are the values ${NAME} references put into secret fields
	// (header values, observe.token): a server may echo one alone.
	secrets []string
}

func (r *reader) failf(n *yaml.Node, field, format string, args ...any) {
	e := &Error{File: r.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	r.errs = append(r.errs, e)
}

// mapping is one YAML mapping being read; every key must be asked for, and
// finish reports the ones nobody asked for as unknown.
type mapping struct {
	r     *reader
	node  *yaml.Node
	path  string
	vals  map[string]*yaml.Node
	keys  map[string]*yaml.Node
	order []string
	asked []string
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (r *reader) mapping(n *yaml.Node, path string) *mapping {
	m := &mapping{r: r, node: n, path: path, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	if n == nil || isNull(n) {
		return m
	}
	if n.Kind != yaml.MappingNode {
		r.failf(n, path, "want a mapping (key: value lines), got %s", describe(n))
		return m
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := m.vals[k.Value]; dup {
			r.failf(k, join(path, k.Value), "given twice (the first is on line %d)", m.keys[k.Value].Line)
			continue
		}
		m.vals[k.Value], m.keys[k.Value] = deref(v), k
		m.order = append(m.order, k.Value)
	}
	return m
}

// get returns the value node of key, or nil when absent or null.
func (m *mapping) get(key string) *yaml.Node {
	m.asked = append(m.asked, key)
	v := m.vals[key]
	if v == nil || isNull(v) {
		return nil
	}
	return v
}

// finish reports every key that no get asked for.
func (m *mapping) finish() {
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
		m.r.failf(m.keys[k], join(m.path, k), "%s", msg)
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

// scalar returns the text of a scalar node, or reports what it got instead.
func (r *reader) scalar(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		r.failf(n, field, "want a single value, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// str reads a string and expands ${NAME} and ${NAME:-default} from the
// environment. A reference to an unset variable without a default is an
// error: a header that silently became "Bearer " would fail far from here.
func (r *reader) str(n *yaml.Node, field string) string {
	s, ok := r.scalar(n, field)
	if !ok {
		return ""
	}
	return r.expand(n, field, s)
}

func (r *reader) expand(n *yaml.Node, field, s string) string {
	return envRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		v, ok := r.lookup(m[1])
		if !ok || v == "" {
			v, ok = m[3], m[2] != ""
		}
		if ok {
			if secretField(field) {
				r.secrets = append(r.secrets, v)
			}
			return v
		}
		r.failf(n, field, "${%s} is not set in the environment (export %s=…, or write ${%s:-default})", m[1], m[1], m[1])
		return ""
	})
}

func (r *reader) boolean(n *yaml.Node, field string) bool {
	s, ok := r.scalar(n, field)
	if !ok {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true
	case "false", "no", "off":
		return false
	}
	r.failf(n, field, "%q is not true or false", s)
	return false
}

func (r *reader) integer(n *yaml.Node, field string, lo int) int {
	s, ok := r.scalar(n, field)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil {
		r.failf(n, field, "%q is not a whole number", s)
		return 0
	}
	if v < lo {
		r.failf(n, field, "%d is below the smallest allowed, %d", v, lo)
	}
	return v
}

func (r *reader) number(n *yaml.Node, field string) float64 {
	s, ok := r.scalar(n, field)
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		r.failf(n, field, "%q is not a number", s)
		return 0
	}
	return v
}

func (r *reader) duration(n *yaml.Node, field string) time.Duration {
	s, ok := r.scalar(n, field)
	if !ok {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		r.failf(n, field, "%v", err)
	}
	return d
}

func (r *reader) strList(n *yaml.Node, field string) []string {
	if n.Kind == yaml.ScalarNode {
		return []string{r.str(n, field)}
	}
	if n.Kind != yaml.SequenceNode {
		r.failf(n, field, "want a list, got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		out = append(out, r.str(deref(c), fmt.Sprintf("%s[%d]", field, i)))
	}
	return out
}

// ParseDuration reads a duration the way scenario files write them: Go
// durations ("90s", "2m30s", "1h") and "0". A bare number is refused so that
// "30" cannot mean seconds to one reader and minutes to another.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, fmt.Errorf("%q has no unit (try %ss)", s, s)
		}
		return 0, fmt.Errorf("%q is not a duration (try 30s, 2m or 1h30m)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// ParseRate reads "10/s", "600/m", "0.5/s" or "36000/h" into requests per
// second.
func ParseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return 0, fmt.Errorf("%q has no unit (try %s/s)", s, s)
		}
		return 0, fmt.Errorf("%q is not a rate (try 10/s)", s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a rate (try 10/s)", s)
	}
	switch strings.TrimSpace(unit) {
	case "s":
		return v, nil
	case "m":
		return v / 60, nil
	case "h":
		return v / 3600, nil
	}
	return 0, fmt.Errorf("%q is not a rate (try %s/s, %s/m or %s/h)", s, strings.TrimSpace(num), strings.TrimSpace(num), strings.TrimSpace(num))
}

// ParseRateRange reads a constant rate ("10/s") or a linear ramp
// ("1/s..12/s", or "1..12/s" with the unit given once).
func ParseRateRange(s string) (from, to float64, err error) {
	a, b, ramp := strings.Cut(s, "..")
	if !ramp {
		v, err := ParseRate(s)
		return v, v, err
	}
	b = strings.TrimSpace(b)
	a = strings.TrimSpace(a)
	if !strings.Contains(a, "/") {
		if _, unit, ok := strings.Cut(b, "/"); ok {
			a += "/" + unit
		}
	}
	if from, err = ParseRate(a); err != nil {
		return 0, 0, fmt.Errorf("ramp %q: start %w", s, err)
	}
	if to, err = ParseRate(b); err != nil {
		return 0, 0, fmt.Errorf("ramp %q: end %w", s, err)
	}
	return from, to, nil
}

// lengths reads a token-length distribution: a number (fixed), "64..256"
// or {min, max} (uniform), or {mean, stddev, min, max} (normal, truncated).
func (r *reader) lengths(n *yaml.Node, field string) Lengths {
	if n.Kind == yaml.ScalarNode {
		s := n.Value
		if a, b, ok := strings.Cut(s, ".."); ok {
			lo, err1 := strconv.Atoi(strings.TrimSpace(a))
			hi, err2 := strconv.Atoi(strings.TrimSpace(b))
			if err1 != nil || err2 != nil || lo < 1 || hi < lo {
				r.failf(n, field, "%q is not a length range (try 64..256)", s)
				return Lengths{}
			}
			return Lengths{Kind: "uniform", Min: lo, Max: hi}
		}
		v := r.integer(n, field, 1)
		return Lengths{Kind: "fixed", Value: v}
	}
	m := r.mapping(n, field)
	l := Lengths{Kind: "uniform"}
	if v := m.get("mean"); v != nil {
		l.Kind = "normal"
		l.Mean = r.number(v, join(field, "mean"))
		if sd := m.get("stddev"); sd != nil {
			l.StdDev = r.number(sd, join(field, "stddev"))
		} else {
			r.failf(n, join(field, "stddev"), "a normal distribution needs stddev")
		}
	}
	lo, hi := m.get("min"), m.get("max")
	switch {
	case lo != nil && hi != nil:
		l.Min, l.Max = r.integer(lo, join(field, "min"), 1), r.integer(hi, join(field, "max"), 1)
		if l.Max < l.Min {
			r.failf(hi, join(field, "max"), "%d is below min %d", l.Max, l.Min)
		}
	case l.Kind == "normal":
		// Unbounded normal: truncate at ±4σ and at 1.
		l.Min = max(1, int(l.Mean-4*l.StdDev))
		l.Max = max(l.Min, int(l.Mean+4*l.StdDev+0.5))
	default:
		r.failf(n, field, "give min and max (uniform), or mean and stddev (normal), or a number")
	}
	m.finish()
	return l
}
