//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/scaleout/scaleout/timeline"
)

// vegetaReport is the part of `vegeta report -type=json` the suite reads
// (vegeta v12.13.0 lib/metrics.go: durations are nanoseconds, success a
// ratio 0..1, rate = requests / (latest − earliest send)).
type vegetaReport struct {
	Latencies struct {
		Mean int64 `json:"mean"`
		P50  int64 `json:"50th"`
		P99  int64 `json:"99th"`
		Max  int64 `json:"max"`
	} `json:"latencies"`
	Duration    int64          `json:"duration"`
	Wait        int64          `json:"wait"`
	Requests    uint64         `json:"requests"`
	Rate        float64        `json:"rate"`
	Throughput  float64        `json:"throughput"`
	Success     float64        `json:"success"`
	StatusCodes map[string]int `json:"status_codes"`
	Errors      []string       `json:"errors"`
}

func parseVegetaReport(b []byte) (vegetaReport, error) {
	var r vegetaReport
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("vegeta report: %w", err)
	}
	return r, nil
}

// parseScaleoutReport reads scaleout's report.json with the reader the
// report command uses, so the suite sees the fields as scaleout writes them.
func parseScaleoutReport(b []byte) (*timeline.Report, error) {
	r, err := timeline.ReadJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("scaleout report.json: %w", err)
	}
	return r, nil
}

// outcome is one client run: what it achieved and what it cost.
type outcome struct {
	Client    string
	Target    float64       // requests per second asked for (0: closed loop)
	Duration  time.Duration // the load's planned length
	Requests  int64
	OK        int64
	Achieved  float64 // the client's own achieved rate
	Errors    string  // "" when none; otherwise class=count, …
	SendLagMS float64 // p99 lateness against the schedule (scaleout only; −1: not known)
	P50MS     float64 // latency p50 (vegeta: to last byte; scaleout: e2e)
	P99MS     float64
	CPU       time.Duration // user + system CPU of the client process
	MaxRSSKB  int64         // peak resident set of the client process
	Wall      time.Duration // process wall time, start to exit
	ServerCPU time.Duration // the server's CPU over the same interval
	Fail      string        // why the run itself failed (not started, killed…)
	TimeWait  int           // sockets in TIME_WAIT when it started
	// ClientLimited is scaleout's own verdict on itself (report.json
	// client_limited): why it could not deliver the planned load; "" when it
	// could.
	ClientLimited string

	BusyBefore  float64       // cores the machine was busy with just before the run (the client not started yet)
	MachineCPU  time.Duration // busy CPU of the whole machine over the run (/proc/stat)
	MachineWall time.Duration // the run's wall time as the machine figure saw it
}

// OtherCPU is the machine's busy CPU over the run that is neither the
// client's nor the server's: other processes (other engineers' builds and
// tests) and kernel time charged to no process (softirq).
func (o outcome) OtherCPU() time.Duration { return max(o.MachineCPU-o.CPU-o.ServerCPU, 0) }

// Contended tells whether other processes took more than quietCores of
// the machine over the run.
func (o outcome) Contended() bool {
	return o.MachineWall > 0 && o.OtherCPU().Seconds()/o.MachineWall.Seconds() > quietCores
}

// Idle is the share of the machine's CPU left idle over the run.
func (o outcome) Idle() float64 {
	total := o.MachineWall.Seconds() * float64(numCPU)
	if total <= 0 {
		return 0
	}
	return max(0, 1-o.MachineCPU.Seconds()/total)
}

// Planned is how many requests the schedule asked for.
func (o outcome) Planned() float64 { return o.Target * o.Duration.Seconds() }

// Pass tells whether an open-loop run sustained its target: the achieved
// rate and the count at least minShare of the plan, no error, and (when
// maxLagMS > 0 and the lag is known) sends no later than maxLagMS at the
// 99th percentile.
func (o outcome) Pass(minShare, maxLagMS float64) (bool, string) {
	switch {
	case o.Fail != "":
		return false, o.Fail
	case o.Requests == 0:
		return false, "no requests"
	case o.Errors != "" || o.OK != o.Requests:
		return false, fmt.Sprintf("errors: %s (%d of %d ok)", orNone(o.Errors), o.OK, o.Requests)
	case o.Achieved < minShare*o.Target:
		return false, fmt.Sprintf("achieved %.0f/s < %.0f%% of %.0f/s", o.Achieved, 100*minShare, o.Target)
	case float64(o.Requests) < minShare*o.Planned():
		return false, fmt.Sprintf("sent %d < %.0f%% of the %.0f planned", o.Requests, 100*minShare, o.Planned())
	case maxLagMS > 0 && o.SendLagMS > maxLagMS:
		return false, fmt.Sprintf("send lag p99 %.0f ms > %.0f ms", o.SendLagMS, maxLagMS)
	}
	return true, ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// CPUPerRequest is the client's CPU per request, in microseconds.
func (o outcome) CPUPerRequest() float64 {
	if o.Requests == 0 {
		return 0
	}
	return float64(o.CPU.Microseconds()) / float64(o.Requests)
}

// vegetaOutcome fills an outcome from vegeta's report.
func vegetaOutcome(o *outcome, r vegetaReport) {
	o.Requests = int64(r.Requests)
	o.OK = int64(float64(r.Requests)*r.Success + 0.5)
	o.Achieved = r.Rate
	o.SendLagMS = -1
	o.P50MS = float64(r.Latencies.P50) / 1e6
	o.P99MS = float64(r.Latencies.P99) / 1e6
	errs := map[string]int{}
	for code, n := range r.StatusCodes {
		if code < "200" || code > "299" || len(code) != 3 {
			errs["status_"+code] += n
		}
	}
	o.Errors = joinCounts(errs)
	if len(r.Errors) > 0 {
		first := r.Errors[0]
		if len(first) > 100 { // the end says why: "…: bind: address already in use"
			first = "…" + first[len(first)-100:]
		}
		if o.Errors != "" {
			o.Errors += "; "
		}
		o.Errors += fmt.Sprintf("%d distinct errors, e.g. %q", len(r.Errors), first)
	}
}

// scaleoutOutcome fills an outcome from scaleout's report.json.
func scaleoutOutcome(o *outcome, r *timeline.Report) {
	l := r.Load
	o.Requests, o.OK, o.Achieved = l.Requests, l.OK, l.AchievedRPS
	o.Errors = joinCounts(l.Errors)
	o.SendLagMS = -1 // nothing measured (a closed loop has no schedule)
	if l.SendLag.P99 != nil {
		o.SendLagMS = *l.SendLag.P99
	}
	if l.E2E.P50 != nil && l.E2E.P99 != nil {
		o.P50MS, o.P99MS = *l.E2E.P50, *l.E2E.P99
	}
	if cl := r.ClientLimited; cl != nil {
		var reasons []string
		for _, st := range cl.Stages {
			reasons = append(reasons, st.Reasons...)
		}
		o.ClientLimited = strings.Join(reasons, "; ")
		if o.ClientLimited == "" {
			o.ClientLimited = "yes"
		}
	}
}

// joinCounts prints class → count as "a=1, b=2", sorted; "" when empty.
func joinCounts[N int | int64](m map[string]N) string {
	keys := make([]string, 0, len(m))
	for k, n := range m {
		if n > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
