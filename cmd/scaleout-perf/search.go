//go:build linux

package main

import (
	"fmt"
	"math"
)

// rateSearch finds the highest rate that passes: it doubles from Start
// until a rate fails, then bisects between the highest pass and the lowest
// failure until they are within Tol of each other. If Start itself fails it
// halves down to Floor. It never proposes more than Max. Pure: the caller
// runs each proposed rate and reports the outcome with Record.
type rateSearch struct {
	Start, Floor, Max float64
	Tol               float64 // relative gap between pass and fail at which the search stops, e.g. 0.05
	Step              float64 // rates are rounded to a multiple of this (0: 10)

	pass, fail float64 // highest rate that passed and lowest that failed (0: none yet)
	tried      []probeOutcome
}

type probeOutcome struct {
	Rate float64
	Pass bool
}

// Next is the rate to try next, and false once the search is over.
func (s *rateSearch) Next() (float64, bool) {
	step := s.Step
	if step <= 0 {
		step = 10
	}
	round := func(r float64) float64 { return math.Round(r/step) * step }
	switch {
	case s.pass == 0 && s.fail == 0:
		return round(s.Start), true
	case s.fail == 0: // still doubling
		if s.pass >= s.Max {
			return 0, false
		}
		return round(math.Min(2*s.pass, s.Max)), true
	case s.pass == 0: // even the start failed: halve down
		r := round(s.fail / 2)
		if r < s.Floor || r <= 0 {
			return 0, false
		}
		return r, true
	}
	if (s.fail-s.pass)/s.pass <= s.Tol {
		return 0, false
	}
	mid := round((s.pass + s.fail) / 2)
	if mid <= s.pass || mid >= s.fail {
		return 0, false // the step is coarser than the gap
	}
	return mid, true
}

// Record notes the outcome of running rate.
func (s *rateSearch) Record(rate float64, pass bool) {
	s.tried = append(s.tried, probeOutcome{rate, pass})
	if pass {
		if rate > s.pass {
			s.pass = rate
		}
		return
	}
	if s.fail == 0 || rate < s.fail {
		s.fail = rate
	}
}

// Best is the highest rate that passed (0: none).
func (s *rateSearch) Best() float64 { return s.pass }

// Bounds says where the answer lies, for the report.
func (s *rateSearch) Bounds() string {
	switch {
	case s.pass == 0 && s.fail == 0:
		return "not run"
	case s.pass == 0:
		return fmt.Sprintf("every rate failed, down to %s", fmtRate(s.fail))
	case s.fail == 0:
		return fmt.Sprintf("≥ %s (the search's maximum passed)", fmtRate(s.pass))
	}
	return fmt.Sprintf("between %s (pass) and %s (fail)", fmtRate(s.pass), fmtRate(s.fail))
}

// fmtRate prints a rate as 12,340/s.
func fmtRate(r float64) string { return thousands(int64(math.Round(r))) + "/s" }

// thousands prints n with comma separators.
func thousands(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
