package measure

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Lengths is a distribution of token counts (prompt or output lengths).
// Kind is "fixed" (Value), "uniform" (Min..Max inclusive) or "normal"
// (Mean, StdDev, truncated to Min..Max).
type Lengths struct {
	Kind   string
	Value  int
	Min    int
	Max    int
	Mean   float64
	StdDev float64
}

// Fixed is the distribution that is always n.
func Fixed(n int) Lengths { return Lengths{Kind: "fixed", Value: n} }

// Sample draws one length from r. Draws are always at least 1.
func (l Lengths) Sample(r *rand.Rand) int {
	var n int
	switch l.Kind {
	case "uniform":
		n = l.Min + r.IntN(l.Max-l.Min+1)
	case "normal":
		n = int(math.Round(r.NormFloat64()*l.StdDev + l.Mean))
		n = min(max(n, l.Min), l.Max)
	default:
		n = l.Value
	}
	return max(n, 1)
}

// Validate checks that the distribution can be drawn from: a known Kind
// ("" counts as fixed) and lengths of at least 1.
func (l Lengths) Validate() error {
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

// Varies reports whether draws may differ: false only for a fixed length
// (Kind "" or "fixed"); an unknown Kind is not taken for a fixed one.
func (l Lengths) Varies() bool { return l.Kind != "" && l.Kind != "fixed" }

// Upper is the largest length Sample can return.
func (l Lengths) Upper() int {
	switch l.Kind {
	case "uniform", "normal":
		return max(l.Max, 1)
	default:
		return max(l.Value, 1)
	}
}

// String prints the distribution the way a scenario spells it.
func (l Lengths) String() string {
	switch l.Kind {
	case "uniform":
		return fmt.Sprintf("uniform %d..%d", l.Min, l.Max)
	case "normal":
		return fmt.Sprintf("normal %g±%g in %d..%d", l.Mean, l.StdDev, l.Min, l.Max)
	default:
		return fmt.Sprint(l.Value)
	}
}
