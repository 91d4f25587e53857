package scenario

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/scaleout/scaleout/internal/yamlread"
)

// reader reads a scenario's nodes: yamlread's strict reading, plus
// ${NAME} expansion from the environment.
type reader struct {
	*yamlread.Reader
	lookup func(string) (string, bool) // the environment, for ${NAME}
	// secrets are the values ${NAME} references put into secret fields
	// (header values, observe.token): a server may echo one alone.
	secrets []string
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// str reads a string and expands ${NAME} and ${NAME:-default} from the
// environment. A reference to an unset variable without a default is an
// error: a header that silently became "Bearer " would fail far from here.
func (r *reader) str(n *yaml.Node, field string) string {
	s, ok := r.Scalar(n, field)
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
		r.Failf(n, field, "${%s} is not set in the environment (export %s=…, or write ${%s:-default})", m[1], m[1], m[1])
		return ""
	})
}

func (r *reader) duration(n *yaml.Node, field string) time.Duration {
	s, ok := r.Scalar(n, field)
	if !ok {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		r.Failf(n, field, "%v", err)
	}
	return d
}

// fraction reads a share written as a percentage ("5%") or a fraction
// (0.05), from 0 up to (not including) 1.
func (r *reader) fraction(n *yaml.Node, field string) float64 {
	s, ok := r.Scalar(n, field)
	if !ok {
		return 0
	}
	t := strings.TrimSpace(s)
	scale := 1.0
	if p, found := strings.CutSuffix(t, "%"); found {
		t, scale = strings.TrimSpace(p), 0.01
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v*scale < 0 || v*scale >= 1 {
		r.Failf(n, field, "%q is not a share from 0 to below 100%% (write 5%% or 0.05)", s)
		return 0
	}
	return v * scale
}

func (r *reader) strList(n *yaml.Node, field string) []string {
	if n.Kind == yaml.ScalarNode {
		return []string{r.str(n, field)}
	}
	if n.Kind != yaml.SequenceNode {
		r.Failf(n, field, "want a list, got %s", yamlread.Describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		out = append(out, r.str(yamlread.Deref(c), fmt.Sprintf("%s[%d]", field, i)))
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
				r.Failf(n, field, "%q is not a length range (try 64..256)", s)
				return Lengths{}
			}
			return Lengths{Kind: "uniform", Min: lo, Max: hi}
		}
		v := r.Int(n, field, 1)
		return Lengths{Kind: "fixed", Value: v}
	}
	m := r.Mapping(n, field)
	l := Lengths{Kind: "uniform"}
	if v := m.Get("mean"); v != nil {
		l.Kind = "normal"
		l.Mean = r.Float(v, yamlread.Join(field, "mean"))
		if sd := m.Get("stddev"); sd != nil {
			l.StdDev = r.Float(sd, yamlread.Join(field, "stddev"))
		} else {
			r.Failf(n, yamlread.Join(field, "stddev"), "a normal distribution needs stddev")
		}
	}
	lo, hi := m.Get("min"), m.Get("max")
	switch {
	case lo != nil && hi != nil:
		l.Min, l.Max = r.Int(lo, yamlread.Join(field, "min"), 1), r.Int(hi, yamlread.Join(field, "max"), 1)
		if l.Max < l.Min {
			r.Failf(hi, yamlread.Join(field, "max"), "%d is below min %d", l.Max, l.Min)
		}
	case l.Kind == "normal":
		// Unbounded normal: truncate at ±4σ and at 1.
		l.Min = max(1, int(l.Mean-4*l.StdDev))
		l.Max = max(l.Min, int(l.Mean+4*l.StdDev+0.5))
	default:
		r.Failf(n, field, "give min and max (uniform), or mean and stddev (normal), or a number")
	}
	m.Finish()
	return l
}
