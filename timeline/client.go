package timeline

import (
	"fmt"
	"strings"
)

// Client self-check default limits: a stage whose achieved rate falls more
// than 5% short of its target, or whose sends went out more than 50 ms late
// at the 99th percentile, was limited by the client, not by the target. A
// scenario's client_check changes them (Report.ClientCheck).
const (
	ShortfallLimit = 0.05
	LagLimitMS     = 50.0
)

// ClientCheck are the limits the self-check judged the stages by, as
// report.json records them.
type ClientCheck struct {
	MaxSendLagMS float64 `json:"max_send_lag_ms"`
	MaxShortfall float64 `json:"max_shortfall"` // a fraction of the target rate
}

// busyWait is the CPU wait that marks the machine as busy: the client's
// threads waited for a CPU, runnable, at least this long per second of
// CPU they got. On an idle machine it stays near 0.02.
const busyWait = 0.25

// busy says the client's threads waited for a CPU at least busyWait per
// second of CPU they got: other processes kept the machine busy.
func (c *ClientUse) busy() bool {
	return c != nil && c.CPUWaitS != nil && c.CPUSeconds > 0 && *c.CPUWaitS >= busyWait*c.CPUSeconds
}

// CheckClient marks the stages the load generator could not deliver as
// planned, with the reasons it can tell (max_in_flight, file descriptors
// or ports, CPU, a machine busy with other processes), and makes the
// verdict fail: a run whose load fell short proves nothing about the target
// at that load. The limits are r.ClientCheck's, the defaults when nil.
func CheckClient(r *Report) {
	if r.ClientCheck == nil {
		r.ClientCheck = &ClientCheck{MaxSendLagMS: LagLimitMS, MaxShortfall: ShortfallLimit}
	}
	lim := *r.ClientCheck
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
		short := s.AchievedRPS < (1-lim.MaxShortfall)*s.TargetRPS
		late := s.SendLag.P99 != nil && *s.SendLag.P99 > lim.MaxSendLagMS
		if !short && !late {
			continue
		}
		ls := LimitedStage{Stage: s.Name, AchievedRPS: s.AchievedRPS, TargetRPS: s.TargetRPS, LagP99MS: s.SendLag.P99, Short: short, Late: late}
		if c := s.Client; c != nil && c.CapReached > 0 {
			ls.Reasons = append(ls.Reasons, fmt.Sprintf("max_in_flight: %d sends were held back because that many requests were already in flight (raise max_in_flight)", c.CapReached))
		}
		if n := s.Errors["client_limit"]; n > 0 {
			ls.Reasons = append(ls.Reasons, fmt.Sprintf("connection limits: %d requests found no file descriptor or local port (raise ulimit -n, or lower the concurrency)", n))
		}
		if c := s.Client; c != nil && c.Cores > 0 && c.CPUCores >= 0.9*float64(c.Cores) {
			ls.Reasons = append(ls.Reasons, fmt.Sprintf("CPU: the client used %.2f of its %d cores (give it its own machine or more cores)", c.CPUCores, c.Cores))
		}
		if c := s.Client; c.busy() {
			ls.Busy = true
			loosen := "client_check.max_send_lag"
			if short {
				loosen = "client_check.max_shortfall"
			}
			ls.Reasons = append(ls.Reasons, fmt.Sprintf("a busy machine: other processes held the cores, and the client's threads waited %s for a CPU while they ran for %s (the load fell behind its schedule because the client could not run, not because of the target; run it on a quieter machine, or loosen %s)",
				span(*c.CPUWaitS), span(c.CPUSeconds), loosen))
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
		parts = append(parts, l.String(lim)+" ("+strings.Join(l.Reasons, "; ")+")")
	}
	r.Expectations = append(r.Expectations, Outcome{Expr: "the client delivered the planned load", OK: false,
		Detail: "client_limited: " + strings.Join(parts, "; ")})
}

// String says what fell short in a stage, against the limits: the rate
// (sent fewer than planned) or the timing (sent late), never one dressed
// as the other.
func (l LimitedStage) String(lim ClientCheck) string {
	if l.TargetRPS == 0 {
		return l.Stage
	}
	var what []string
	if l.Short {
		what = append(what, fmt.Sprintf("sent %s/s of the %s/s planned (more than %s short)", num(l.AchievedRPS), num(l.TargetRPS), pctShare(lim.MaxShortfall)))
	}
	if l.Late && l.LagP99MS != nil {
		s := fmt.Sprintf("sends went out late: send lag p99 %s, over the %s limit", pct(l.LagP99MS), pct(&lim.MaxSendLagMS))
		if !l.Short {
			s += fmt.Sprintf(" (the rate itself was kept: %s/s of %s/s)", num(l.AchievedRPS), num(l.TargetRPS))
		}
		what = append(what, s)
	}
	return l.Stage + ": " + strings.Join(what, "; ")
}

func pctShare(f float64) string { return trimZeros(fmt.Sprintf("%.2f", 100*f)) + "%" }
