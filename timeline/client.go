package timeline

import (
	"fmt"
	"strings"
)

// Client self-check limits: a stage whose achieved rate falls more than 5%
// short of its target, or whose sends went out more than 50 ms late at the
// 99th percentile, was limited by the client, not by the target.
const (
	ShortfallLimit = 0.05
	LagLimitMS     = 50.0
)

// CheckClient marks the stages the load generator could not deliver as
// planned, with the reasons it can tell (max_in_flight, file descriptors
// or ports, CPU), and makes the verdict fail: a run whose load fell short
// proves nothing about the target at that load.
func CheckClient(r *Report) {
	var limited []LimitedStage
	for _, s := range r.Stages {
		if s.Concurrency > 0 && s.Workers > 0 && s.Workers < s.Concurrency {
			limited = append(limited, LimitedStage{Stage: s.Name, AchievedRPS: s.AchievedRPS, Reasons: []string{
				fmt.Sprintf("max_in_flight: the stage asked for concurrency %d but ran with %d (raise max_in_flight)", s.Concurrency, s.Workers)}})
			continue
		}
		if s.TargetRPS <= 0 || s.Requests == 0 && s.EndedBy == NotStarted {
			continue // closed loop has no schedule to fall behind
		}
		short := s.AchievedRPS < (1-ShortfallLimit)*s.TargetRPS
		late := s.SendLag.P99 != nil && *s.SendLag.P99 > LagLimitMS
		if !short && !late {
			continue
		}
		ls := LimitedStage{Stage: s.Name, AchievedRPS: s.AchievedRPS, TargetRPS: s.TargetRPS, LagP99MS: s.SendLag.P99}
		if c := s.Client; c != nil && c.CapReached > 0 {
			ls.Reasons = append(ls.Reasons, fmt.Sprintf("max_in_flight: %d sends were held back because that many requests were already in flight (raise max_in_flight)", c.CapReached))
		}
		if n := s.Errors["client_limit"]; n > 0 {
			ls.Reasons = append(ls.Reasons, fmt.Sprintf("connection limits: %d requests found no file descriptor or local port (raise ulimit -n, or lower the concurrency)", n))
		}
		if c := s.Client; c != nil && c.Cores > 0 && c.CPUCores >= 0.9*float64(c.Cores) {
			ls.Reasons = append(ls.Reasons, fmt.Sprintf("CPU: the client used %.2f of its %d cores (give it its own machine or more cores)", c.CPUCores, c.Cores))
		}
		if len(ls.Reasons) == 0 {
			ls.Reasons = append(ls.Reasons, "not CPU, max_in_flight or sockets as far as the client can tell: the machine may be shared, or the target slow to accept connections")
		}
		limited = append(limited, ls)
	}
	if len(limited) == 0 {
		return
	}
	r.ClientLimited = &ClientLimited{Stages: limited}
	var parts []string
	for _, l := range limited {
		p := fmt.Sprintf("%s achieved %s/s of %s/s", l.Stage, num(l.AchievedRPS), num(l.TargetRPS))
		if l.TargetRPS == 0 {
			p = l.Stage
		}
		if l.LagP99MS != nil {
			p += fmt.Sprintf(", send lag p99 %s", pct(l.LagP99MS))
		}
		parts = append(parts, p+" ("+strings.Join(l.Reasons, "; ")+")")
	}
	r.Expectations = append(r.Expectations, Outcome{Expr: "the client delivered the planned load", OK: false,
		Detail: "client_limited: " + strings.Join(parts, "; ")})
}
