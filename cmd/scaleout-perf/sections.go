//go:build linux

package main

import (
	"context"
	"fmt"
	"math"
	"time"
)

// runClient runs one client on a load.
// Before each run, the sockets earlier runs left in TIME_WAIT must have
// mostly gone (bounded wait), so no run inherits a short port range.
func (s *suite) runClient(ctx context.Context, client string, srv *serverProc, l load) outcome {
	tw := waitTimeWait(ctx, maxTimeWait, 65*time.Second)
	before := waitQuiet(ctx, quietCores, 90*time.Second)
	busy0, t0 := machineBusy(), time.Now()
	var o outcome
	if client == "vegeta" {
		o = s.cl.runVegeta(ctx, srv, l)
	} else {
		o = s.cl.runScaleout(ctx, srv, l)
	}
	o.MachineCPU, o.MachineWall = machineBusy()-busy0, time.Since(t0)
	o.TimeWait, o.BusyBefore = tw, before
	if before > quietCores {
		s.notes = append(s.notes, fmt.Sprintf("%s %s at %s: other processes kept %.2f cores busy when it started (waited 90 s for the machine to quiet)", l.Name, client, fmtRate(l.Rate), before))
	}
	if tw > maxTimeWait {
		s.notes = append(s.notes, fmt.Sprintf("%s %s at %s: %d sockets were still in TIME_WAIT when it started", l.Name, client, fmtRate(l.Rate), tw))
	}
	return o
}

// maxTimeWait is how many sockets may be in TIME_WAIT when a run starts.
const maxTimeWait = 2000

// quietCores is how busy the rest of the machine may be (cores, over a
// 2-second window) when a run starts, and during a run before the run
// counts as contended.
const quietCores = 0.25

// probeRow is one run of the rate search.
type probeRow struct {
	outcome
	pass  bool
	why   string
	retry bool // the second run at a rate whose first run failed
}

type rateResult struct {
	duration time.Duration
	tol      float64
	search   map[string]*rateSearch
	probes   []probeRow
}

// clientsOrder is the order both clients run in; it alternates from one
// round to the next so neither always runs on a machine the other just
// warmed or loaded.
var clientsOrder = []string{"scaleout", "vegeta"}

func roundOrder(round int) []string {
	if round%2 == 0 {
		return clientsOrder
	}
	return []string{clientsOrder[1], clientsOrder[0]}
}

// runAgain tells whether a rate probe runs again: the machine is shared, so
// a failure counts once a second run at the same rate fails too, and a
// third run is given when the second failed while other processes took a
// share of the CPU.
func runAgain(attempt int, pass, contended, retry bool) bool {
	switch {
	case pass || !retry:
		return false
	case attempt == 1:
		return true
	}
	return attempt == 2 && contended
}

// runRate searches each client's highest sustained rate of small
// non-streamed completions, the two searches interleaved probe by probe.
func (s *suite) runRate(ctx context.Context, srv *serverProc) *rateResult {
	o := s.opt
	r := &rateResult{duration: o.rateDuration, tol: o.rateTol, search: map[string]*rateSearch{}}
	fmt.Printf("\n== rate: highest open-loop rate of non-streamed completions (max_tokens 1) sustained for %s: ≥ %.0f%% of the target sent, no error ==\n",
		o.rateDuration, 100*minShare)
	for _, c := range clientsOrder {
		r.search[c] = &rateSearch{Start: o.rateStart, Floor: 100, Max: o.rateMax, Tol: o.rateTol, Step: 10}
	}
	probes := map[string]int{}
	for round := 0; ctx.Err() == nil; round++ {
		progressed := false
		for _, c := range roundOrder(round) {
			srch := r.search[c]
			rate, ok := srch.Next()
			if !ok || probes[c] >= o.rateProbes || ctx.Err() != nil {
				continue
			}
			progressed = true
			probes[c]++
			var pass bool
			for attempt := 1; ctx.Err() == nil; attempt++ {
				out := s.runClient(ctx, c, srv, load{Name: "rate", MaxTokens: 1, Rate: rate, Duration: o.rateDuration, Timeout: o.timeout})
				if ctx.Err() != nil {
					break
				}
				var why string
				pass, why = out.Pass(minShare, s.opt.maxLagMS())
				r.probes = append(r.probes, probeRow{outcome: out, pass: pass, why: why, retry: attempt > 1})
				line := progressLine("rate", out, pass, why)
				if attempt > 1 {
					line += fmt.Sprintf(" (run %d)", attempt)
				}
				fmt.Println(line)
				s.pause(ctx)
				if !runAgain(attempt, pass, out.Contended(), o.retry) {
					break
				}
			}
			if ctx.Err() != nil {
				break
			}
			srch.Record(rate, pass)
		}
		if !progressed {
			break
		}
	}
	for _, c := range clientsOrder {
		fmt.Printf("rate: %s sustains %s (%s)\n", c, fmtRate(r.search[c].Best()), r.search[c].Bounds())
	}
	return r
}

// progressLine is one client run, as printed while the suite runs.
func progressLine(section string, o outcome, pass bool, why string) string {
	verdict := "PASS"
	if !pass {
		verdict = "FAIL " + why
	}
	if o.ClientLimited != "" {
		verdict += " · scaleout's self-check: client-limited"
	}
	target := "closed loop"
	if o.Target > 0 {
		target = fmtRate(o.Target)
	}
	lag := ""
	if o.SendLagMS >= 0 {
		lag = fmt.Sprintf(" · send lag p99 %.1f ms", o.SendLagMS)
	}
	return fmt.Sprintf("%-4s %-8s %-12s sent %-9s achieved %-10s cpu %6.2fs (%5.1f µs/req) · rss %4.0f MB · server cpu %5.2fs · rest of machine %5.2fs, idle %3.0f%%%s · %s",
		section, o.Client, target, thousands(o.Requests), fmtRate(o.Achieved),
		o.CPU.Seconds(), o.CPUPerRequest(), mb(o.MaxRSSKB), o.ServerCPU.Seconds(), o.OtherCPU().Seconds(), 100*o.Idle(), lag, verdict)
}

// mb is KiB in MB (10^6 bytes).
func mb(kib int64) float64 { return float64(kib) * 1024 / 1e6 }

type cpuResult struct {
	rate     float64
	duration time.Duration
	runs     []probeRow
	baseline map[string]outcome // a 10-request run: the cost of starting, setting up and reporting
}

// cpuSummary is one client's figures over its cpu runs.
type cpuSummary struct {
	requests    int64
	cpu         time.Duration
	perRequest  float64 // µs: all CPU ÷ all requests
	netPerReq   float64 // µs: (CPU − the baseline run's CPU) ÷ requests, averaged over runs
	allPass     bool
	runs        int
	maxRSSKB    int64
	serverPerRq float64 // µs of server CPU per request
}

func (c *cpuResult) summary(client string) cpuSummary {
	var s cpuSummary
	s.allPass = true
	var net float64
	var server time.Duration
	base := c.baseline[client]
	for _, r := range c.runs {
		if r.Client != client {
			continue
		}
		s.runs++
		s.requests += r.Requests
		s.cpu += r.CPU
		server += r.ServerCPU
		s.maxRSSKB = max(s.maxRSSKB, r.MaxRSSKB)
		if r.Requests > 0 {
			net += float64((r.CPU - base.CPU).Microseconds()) / float64(r.Requests)
		}
		s.allPass = s.allPass && r.pass
	}
	if s.runs == 0 {
		s.allPass = false
		return s
	}
	if s.requests > 0 {
		s.perRequest = float64(s.cpu.Microseconds()) / float64(s.requests)
		s.serverPerRq = float64(server.Microseconds()) / float64(s.requests)
	}
	s.netPerReq = net / float64(s.runs)
	return s
}

// ratio is scaleout's CPU per streamed request over vegeta's (0: unknown).
func (c *cpuResult) ratio() float64 {
	a, b := c.summary("scaleout"), c.summary("vegeta")
	if a.perRequest == 0 || b.perRequest == 0 {
		return 0
	}
	return a.perRequest / b.perRequest
}

// runCPU runs both clients at the same streamed rate, alternating.
func (s *suite) runCPU(ctx context.Context, srv *serverProc) *cpuResult {
	o := s.opt
	c := &cpuResult{rate: o.cpuRate, duration: o.cpuDuration, baseline: map[string]outcome{}}
	fmt.Printf("\n== cpu: client CPU per streamed request (64 one-token events, no token latency) at %s for %s, %d run(s) each ==\n",
		fmtRate(o.cpuRate), o.cpuDuration, o.cpuReps)
	for _, cl := range clientsOrder {
		if ctx.Err() != nil {
			return c
		}
		b := s.runClient(ctx, cl, srv, load{Name: "cpu-baseline", Stream: true, MaxTokens: 64, Rate: 10, Duration: time.Second, Timeout: o.timeout})
		c.baseline[cl] = b
		pass, why := b.Pass(minShare, s.opt.maxLagMS())
		fmt.Println(progressLine("base", b, pass, why))
		s.pause(ctx)
	}
	for rep := 0; rep < o.cpuReps && ctx.Err() == nil; rep++ {
		for _, cl := range roundOrder(rep) {
			if ctx.Err() != nil {
				break
			}
			out := s.runClient(ctx, cl, srv, load{Name: "cpu", Stream: true, MaxTokens: 64, Rate: o.cpuRate, Duration: o.cpuDuration, Timeout: o.timeout})
			pass, why := out.Pass(minShare, s.opt.maxLagMS())
			c.runs = append(c.runs, probeRow{outcome: out, pass: pass, why: why})
			fmt.Println(progressLine("cpu", out, pass, why))
			s.pause(ctx)
		}
	}
	sc, vg := c.summary("scaleout"), c.summary("vegeta")
	fmt.Printf("cpu: scaleout %.1f µs/request, vegeta %.1f µs/request: ratio %.2f\n", sc.perRequest, vg.perRequest, c.ratio())
	return c
}

type rssResult struct {
	streams  int
	hold     time.Duration
	tokens   int
	skipped  string
	baseline outcome
	scaleout outcome
	vegeta   outcome
	srvS     serverCounts // the server's counts after scaleout's run
	srvV     serverCounts // after vegeta's
	srvErr   string
}

// fdNeeded is the descriptors a process needs to hold n sockets, with a
// reserve for everything else.
func fdNeeded(n int) uint64 { return uint64(n) + 256 }

// runRSS holds the streams open with a closed loop against a server that
// sends one token a second, scaleout first, then vegeta for comparison.
func (s *suite) runRSS(ctx context.Context) *rssResult {
	o := s.opt
	r := &rssResult{streams: o.streams, hold: o.hold}
	// The stream outlasts the stage: each of the N workers sends one request
	// that stays open until after the stage's end.
	r.tokens = int(math.Ceil(o.hold.Seconds())) + 2
	fmt.Printf("\n== rss: %s concurrent streams held open for %s (closed loop; the server sends one token a second, %d tokens) ==\n",
		thousands(int64(o.streams)), o.hold, r.tokens)
	if need := fdNeeded(o.streams); s.m.NoFileHard < need {
		r.skipped = fmt.Sprintf("RLIMIT_NOFILE hard limit %d is below the %d descriptors each process needs (the client and the server each hold %d sockets): raise `ulimit -n` or lower -streams",
			s.m.NoFileHard, need, o.streams)
		fmt.Println("rss: skipped:", r.skipped)
		return r
	}
	timeout := o.hold + 2*time.Minute

	// Baseline: the same client with 20 short streams, for RSS per stream
	// net of what any run holds.
	if srv, err := startServer(s.exe, serveConfig{Tokens: 64, Prompt: promptTokens}); err == nil {
		r.baseline = s.runClient(ctx, "scaleout", srv, load{Name: "rss-baseline", Stream: true, MaxTokens: 64, Rate: 10, Duration: 2 * time.Second, Timeout: timeout})
		srv.stop()
		pass, why := r.baseline.Pass(minShare, s.opt.maxLagMS())
		fmt.Println(progressLine("base", r.baseline, pass, why))
	} else {
		r.baseline.Fail = err.Error()
	}
	s.pause(ctx)

	held := func(client string, counts *serverCounts) outcome {
		srv, err := startServer(s.exe, serveConfig{Tokens: r.tokens, TokenDelay: time.Second, Prompt: promptTokens})
		if err != nil {
			return outcome{Client: client, Fail: err.Error()}
		}
		defer srv.stop()
		l := load{Name: "rss", Stream: true, MaxTokens: r.tokens, Concurrency: o.streams, Duration: o.hold, Timeout: timeout}
		out := s.runClient(ctx, client, srv, l)
		if c, err := srv.counts(); err == nil {
			*counts = c
		} else {
			r.srvErr = err.Error()
		}
		pass := out.Fail == "" && out.Errors == "" && counts.PeakOpenStreams >= int64(o.streams)
		why := fmt.Sprintf("server saw at most %d streams open at once; errors: %s %s", counts.PeakOpenStreams, orNone(out.Errors), out.Fail)
		fmt.Println(progressLine("rss", out, pass, why) + fmt.Sprintf(" · peak open streams %s", thousands(counts.PeakOpenStreams)))
		return out
	}
	if ctx.Err() == nil {
		r.scaleout = held("scaleout", &r.srvS)
		s.pause(ctx)
	}
	if ctx.Err() == nil {
		r.vegeta = held("vegeta", &r.srvV)
	}
	return r
}

// perStreamKB is peak RSS per stream, gross and net of the baseline run.
func (r *rssResult) perStreamKB(o outcome) (gross, net float64) {
	if r.streams == 0 || o.MaxRSSKB == 0 {
		return 0, 0
	}
	gross = float64(o.MaxRSSKB) / float64(r.streams)
	net = float64(o.MaxRSSKB-r.baseline.MaxRSSKB) / float64(r.streams)
	return gross, net
}
