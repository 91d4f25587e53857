//go:build linux

package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scaleout/scaleout/timeline"
)

// targetRow is one target beside its figure.
type targetRow struct {
	what, scaleout, vegeta, target, verdict string
}

func verdict(ok, known bool) string {
	switch {
	case !known:
		return "not measured"
	case ok:
		return "met"
	}
	return "missed"
}

// targets holds every figure against its target.
func (s *suite) targets() []targetRow {
	var rows []targetRow
	if r := s.rate; r != nil {
		sc, vg := r.search["scaleout"], r.search["vegeta"]
		rows = append(rows, targetRow{
			what:     fmt.Sprintf("highest sustained rate, non-streamed, %s probes", r.duration),
			scaleout: fmtRate(sc.Best()), vegeta: fmtRate(vg.Best()),
			target:  "≥ " + fmtRate(targetRate),
			verdict: verdict(sc.Best() >= targetRate, len(sc.tried) > 0),
		})
	}
	if c := s.cpu; c != nil {
		sc, vg := c.summary("scaleout"), c.summary("vegeta")
		ach := func(x cpuSummary) string {
			if x.runs == 0 {
				return "–"
			}
			if x.allPass {
				return fmt.Sprintf("yes, %d/%d runs", x.runs, x.runs)
			}
			return "no"
		}
		rows = append(rows, targetRow{
			what:     fmt.Sprintf("streamed 64-token requests at %s for %s sustained", fmtRate(c.rate), c.duration),
			scaleout: ach(sc), vegeta: ach(vg),
			target:  "≥ " + fmtRate(targetStreamRate),
			verdict: verdict(sc.allPass && c.rate >= targetStreamRate, sc.runs > 0),
		})
		ratio := c.ratio()
		rows = append(rows, targetRow{
			what:     "client CPU per streamed request (ratio scaleout/vegeta)",
			scaleout: fmt.Sprintf("%.1f µs", sc.perRequest), vegeta: fmt.Sprintf("%.1f µs", vg.perRequest),
			target:  fmt.Sprintf("ratio ≤ %.1f (here %.2f)", targetCPURatio, ratio),
			verdict: verdict(ratio > 0 && ratio <= targetCPURatio, ratio > 0),
		})
	}
	if r := s.rss; r != nil {
		known := r.skipped == "" && r.scaleout.MaxRSSKB > 0
		heldAll := r.srvS.PeakOpenStreams >= int64(r.streams) && r.scaleout.Errors == "" && r.scaleout.Fail == ""
		vg := "–"
		if r.vegeta.MaxRSSKB > 0 {
			vg = fmt.Sprintf("%.0f MB", mb(r.vegeta.MaxRSSKB))
		}
		sc := "–"
		if known {
			sc = fmt.Sprintf("%.0f MB", mb(r.scaleout.MaxRSSKB))
			if !heldAll {
				sc += fmt.Sprintf(" (only %s held)", thousands(r.srvS.PeakOpenStreams))
			}
		}
		rows = append(rows, targetRow{
			what:     fmt.Sprintf("peak RSS, %s streams held open %s", thousands(int64(r.streams)), r.hold),
			scaleout: sc, vegeta: vg,
			target:  fmt.Sprintf("≤ %d MB with %s", targetRSSMB, thousands(targetStreams)),
			verdict: verdict(known && heldAll && r.streams >= targetStreams && mb(r.scaleout.MaxRSSKB) <= targetRSSMB, known),
		})
	}
	return rows
}

// summaryText is the table printed at the end.
func (s *suite) summaryText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "targets (%d cores, client and server on the same machine; load average %s):\n", s.m.Cores, strings.Join(s.loadAt, ", "))
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  figure\tscaleout\tvegeta\ttarget\t")
	for _, r := range s.targets() {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", r.what, r.scaleout, r.vegeta, r.target, r.verdict)
	}
	w.Flush()
	if r := s.rss; r != nil && r.skipped == "" {
		g, n := r.perStreamKB(r.scaleout)
		fmt.Fprintf(&b, "  scaleout RSS per stream: %.1f KiB (%.1f KiB net of a 20-request run's %.0f MB)\n", g, n, mb(r.baseline.MaxRSSKB))
	}
	if c := s.cpu; c != nil {
		sc, vg := c.summary("scaleout"), c.summary("vegeta")
		if sc.runs > 0 && vg.runs > 0 {
			fmt.Fprintf(&b, "  CPU per streamed request net of a 10-request run's fixed cost: scaleout %.1f µs, vegeta %.1f µs\n", sc.netPerReq, vg.netPerReq)
		}
	}
	for _, n := range s.notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

// markdown is docs/perf.md.
func (s *suite) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# scaleout load generator: performance\n\n")
	p("Written by the perf command (cmd/scaleout-perf; its command line is in the table below). Do not edit by hand:\n")
	p("`make perf` writes it again.\n\n")
	p("The suite shows that scaleout's load generator is not the bottleneck of a run and compares it with vegeta's own\n")
	p("CLI (`%s`, built with `go install`) against the same loopback server in the same run.\n\n", vegetaModule)

	p("## Run\n\n")
	p("| | |\n|---|---|\n")
	p("| date | %s (%s of running) |\n", s.started.UTC().Format("2006-01-02 15:04 MST"), s.ended.Sub(s.started).Round(time.Second))
	p("| command | `%s` |\n", s.opt.commandLine)
	p("| CPU | %s, %d cores (/proc/cpuinfo) |\n", s.m.CPUModel, s.m.Cores)
	p("| memory | %s |\n", s.m.MemTotal)
	p("| kernel | Linux %s |\n", s.m.Kernel)
	p("| Go | %s |\n", s.m.GoVersion)
	p("| RLIMIT_NOFILE | %s soft (`ulimit -n`), %d hard; Go processes raise their soft limit to the hard one |\n", s.m.NoFileSoft, s.m.NoFileHard)
	p("| net | somaxconn %s, ephemeral ports %s |\n", s.m.Somaxconn, s.m.PortRange)
	p("| load average (1, 5, 15 min) | %s |\n", strings.Join(s.loadAt, "; "))
	p("| machine state | shared: the client, the server and anything else running (other engineers' builds and tests) share these %d cores; a figure is a floor for this machine, not a property of the code alone |\n", s.m.Cores)
	if s.opt.quick {
		p("| mode | `-quick`: short loads, a coarse rate search; a check, not a measurement |\n")
	}
	p("\n")

	p("## Targets\n\n")
	p("| figure | scaleout | vegeta | target | |\n|---|---|---|---|---|\n")
	for _, r := range s.targets() {
		p("| %s | %s | %s | %s | **%s** |\n", r.what, r.scaleout, r.vegeta, r.target, r.verdict)
	}
	p("\n")
	for _, n := range s.notes {
		p("Note: %s\n\n", n)
	}

	if r := s.rate; r != nil {
		p("## Highest sustained rate (non-streamed)\n\n")
		p("Each probe is one open-loop run of a client at a constant rate for %s: small non-streamed completions\n", r.duration)
		p("(prompt 8 tokens, `max_tokens: 1`, `ignore_eos: true`; the server answers a fixed %d-byte JSON body with usage).\n", jsonBodyLen())
		p("A probe passes when the client sent at least %.0f%% of the planned requests, its achieved rate is at least %.0f%% of the\n", 100*minShare, 100*minShare)
		p("target (scaleout: `load.achieved_rps` of report.json; vegeta: `rate` of `vegeta report -type=json`, requests over\n")
		p("the span of their sends), no request failed")
		if s.opt.maxLag > 0 {
			p(", and the sends went out at most %s late at the 99th percentile (`-max-lag`)", s.opt.maxLag)
		}
		p(". The search doubles from %s until a rate fails, then\n", fmtRate(s.opt.rateStart))
		p("bisects until pass and fail are within %.0f%%; the two clients' probes alternate, against the same server.\n", 100*r.tol)
		p("Send lag p99 is how late the sends went out against the schedule, for both clients: scaleout's\n")
		p("`load.send_lag_ms.p99`, and for vegeta the same figure computed from its results file, each hit's send time against\n")
		p("start + seq/rate (vegeta stamps a hit when its worker takes it, scaleout when its transport sends it, a few µs later,\n")
		p("more when the CPU is saturated). scaleout's own client self-check (timeline.CheckClient) fails a run whose lag p99\n")
		p("passes %.0f ms or whose rate falls %.0f%% short, and `scaleout run` then exits 1: those runs are marked\n", timeline.LagLimitMS, 100*timeline.ShortfallLimit)
		p("\"client-limited\" below; `-max-lag 50ms` holds both clients to that lag.\n")
		if s.opt.retry {
			p("The machine is shared, so a failed probe is run a second time at the same rate and counts as failed only if that\n")
			p("fails too, and a third time when the second ran while other processes took more than %.2f of a core (every run is\n", quietCores)
			p("in the table). Before every run the suite waits (at most 90 s) until the rest of the machine is that quiet.\n")
		}
		p("\n")
		for _, c := range clientsOrder {
			p("- **%s**: %s, %s.\n", c, fmtRate(r.search[c].Best()), r.search[c].Bounds())
		}
		p("\n")
		probeTable(&b, r.probes, true)
	}

	if c := s.cpu; c != nil {
		p("## CPU per streamed request\n\n")
		p("Both clients at %s for %s, streamed (64 content events of one token each, a usage event and `[DONE]`, written by\n", fmtRate(c.rate), c.duration)
		p("the server in one write: no token latency), the same request bodies, the same %s request timeout. CPU is the\n", s.opt.timeout)
		p("client process's user + system time from the kernel at its exit (`os.ProcessState.SysUsage()`: `ru_utime +\n")
		p("ru_stime`), divided by the requests it sent. scaleout's figure includes everything `scaleout run` does:\n")
		p("the scenario, the timing transport, requests.jsonl (one line per request, kept on purpose: it is part of its\n")
		p("real cost), the timeline and report.json/report.html. vegeta's includes encoding its results file\n")
		p("(`-max-body=0`: it reads every body to its end but keeps none); `vegeta report` runs afterwards, not counted.\n")
		p("The \"net\" figures subtract the CPU of a 10-request run of the same client (start-up, set-up, report).\n\n")
		p("| client | runs | requests | CPU | CPU per request | net per request | server CPU per request | peak RSS | achieved |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, cl := range clientsOrder {
			x := c.summary(cl)
			p("| %s | %d | %s | %.2f s | %.1f µs | %.1f µs | %.1f µs | %.0f MB | %s |\n", cl, x.runs, thousands(x.requests), x.cpu.Seconds(),
				x.perRequest, x.netPerReq, x.serverPerRq, mb(x.maxRSSKB), map[bool]string{true: "yes, every run", false: "no"}[x.allPass])
		}
		p("\nRatio scaleout/vegeta: **%.2f** (target ≤ %.1f).\n\n", c.ratio(), targetCPURatio)
		var all []probeRow
		for _, cl := range clientsOrder {
			if b, ok := c.baseline[cl]; ok {
				pass, why := b.Pass(minShare, s.opt.maxLagMS())
				all = append(all, probeRow{outcome: b, pass: pass, why: "baseline: " + why})
			}
		}
		all = append(all, c.runs...)
		probeTable(&b, all, false)
	}

	if r := s.rss; r != nil {
		p("## Memory with streams held open\n\n")
		if r.skipped != "" {
			p("Skipped: %s.\n\n", r.skipped)
		} else {
			p("A closed loop of %s workers for %s (a stage with `concurrency: %d`; vegeta: `-rate=0 -workers=%d -max-workers=%d`)\n",
				thousands(int64(r.streams)), r.hold, r.streams, r.streams, r.streams)
			p("against a server that sends one token a second for %d tokens, so every stream stays open past the stage's end.\n", r.tokens)
			p("Peak RSS is the client process's `ru_maxrss` at its exit. The server runs in its own process: the client and the\n")
			p("server each hold %s sockets, under RLIMIT_NOFILE %d (hard). On a machine whose hard limit is below %d the section is\n",
				thousands(int64(r.streams)), s.m.NoFileHard, fdNeeded(r.streams))
			p("skipped with a message; raise `ulimit -n` there. \"Held\" is the most streams the server had open at once.\n\n")
			p("| client | requests | held at once | errors | CPU | peak RSS | RSS per stream | net per stream |\n|---|---|---|---|---|---|---|---|\n")
			g, n := r.perStreamKB(r.scaleout)
			p("| scaleout | %s | %s | %s | %.2f s | %.0f MB | %.1f KiB | %.1f KiB |\n", thousands(r.scaleout.Requests), thousands(r.srvS.PeakOpenStreams),
				orNone(r.scaleout.Errors+r.scaleout.Fail), r.scaleout.CPU.Seconds(), mb(r.scaleout.MaxRSSKB), g, n)
			if r.vegeta.Client != "" {
				gv, _ := r.perStreamKB(r.vegeta)
				p("| vegeta | %s | %s | %s | %.2f s | %.0f MB | %.1f KiB | – |\n", thousands(r.vegeta.Requests), thousands(r.srvV.PeakOpenStreams),
					orNone(r.vegeta.Errors+r.vegeta.Fail), r.vegeta.CPU.Seconds(), mb(r.vegeta.MaxRSSKB), gv)
			}
			p("\nNet per stream subtracts the peak RSS of a 20-request scaleout run (%.0f MB).\n\n", mb(r.baseline.MaxRSSKB))
		}
	}

	if len(s.profiles) > 0 {
		p("## Profiles\n\n")
		p("scaleout has no profile flag, so `-profile DIR` runs the same load in the perf process itself with loadgen and a\n")
		p("recorder that does what `scaleout run`'s does per request (a requests.jsonl line, the timeline's aggregates),\n")
		p("against the same kind of server (a separate process), under runtime/pprof. `go tool pprof -top` of each:\n\n")
		for _, pr := range s.profiles {
			if pr.Err != "" {
				p("- %s (%s): %s\n\n", pr.Name, pr.Load, pr.Err)
				continue
			}
			p("### %s: %s\n\n", pr.Name, pr.Load)
			p("%d requests, %d errors, %.1f µs of CPU per request in-process. Profile `%s`, full `-top` in `%s`.\n\n",
				pr.Requests, pr.Errors, float64(pr.CPU.Microseconds())/float64(max(pr.Requests, 1)), pr.File, pr.TopFile)
			if pr.Mem != "" {
				p("Runtime memory %s.\n\n", pr.Mem)
			}
			p("```\n%s\n```\n\n", pr.Top)
		}
	}

	p("## How the figures are measured\n\n")
	p("- The server is this program re-executed with a hidden `-serve` flag: a separate process, so its CPU is never a\n")
	p("  client's. It is a minimal HTTP/1.1 keep-alive server on 127.0.0.1 written against the raw connection (no\n")
	p("  net/http), answering `POST /v1/completions` and `GET /v1/models` with bytes rendered once at start: a non-streamed\n")
	p("  OpenAI body with usage, or a chunked SSE stream of one-token events, a `\"choices\":[]` usage event and\n")
	p("  `data: [DONE]`. Its CPU over each client run (from /proc/PID/stat) is in the tables.\n")
	p("- scaleout is built from ./cmd/scaleout and run as `scaleout run SCENARIO --quiet --no-preflight --out DIR` on a\n")
	p("  generated scenario (one stage, no observation, `max_in_flight: %d`); its figures come from DIR/report.json.\n", maxInFlight)
	p("- vegeta is run as `vegeta attack -rate=N/s -duration=D -targets=FILE -format=json -max-body=0 -timeout=T\n")
	p("  -output=FILE`, its other flags at their defaults, and `vegeta report -type=json`. The targets file holds the same\n")
	p("  1024 request bodies scaleout sends (rendered by loadgen.NewBodies with the scenario's spec and seed).\n")
	p("- \"Rest of machine\" is the machine's busy CPU over a run (/proc/stat: user, nice, system, irq, softirq, steal) less\n")
	p("  the client's and the server's: other processes (other engineers' builds and tests) and kernel time charged to no\n")
	p("  process. \"Idle\" is the share of the %d cores left idle over the run: near 0%% the machine, not a client, was the limit.\n", s.m.Cores)
	p("- Before each run the suite waits (at most 65 s) until at most %d sockets are in TIME_WAIT: vegeta binds its sockets\n", maxTimeWait)
	p("  to 0.0.0.0:0 before connecting, and bind() cannot take a port an earlier run left in TIME_WAIT (connect() on\n")
	p("  loopback can), so after a few 10,000-connection runs vegeta fails with `bind: address already in use`.\n")
	p("- Every load is bounded by its duration, each request by the timeout, and each process by a deadline after which it\n")
	p("  is killed. Nothing but 127.0.0.1 is contacted (apart from `go install` fetching vegeta's module if it is not cached).\n")
	return b.String()
}

// probeTable writes client runs as a Markdown table.
func probeTable(b *strings.Builder, rows []probeRow, withVerdict bool) {
	fmt.Fprintf(b, "| client | target | sent | achieved | errors | send lag p99 | latency p50 / p99 | CPU | µs/request | peak RSS | server CPU | rest of machine | idle | result |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		lag := "–"
		if r.SendLagMS >= 0 {
			lag = fmt.Sprintf("%.1f ms", r.SendLagMS)
		}
		res := "pass"
		if !r.pass {
			res = "fail: " + strings.ReplaceAll(r.why, "|", "/")
		}
		if !withVerdict && r.pass {
			res = "achieved"
		}
		if r.retry {
			res += " (rerun)"
		}
		if r.Contended() {
			res += "; contended"
		}
		if r.ClientLimited != "" {
			res += "; scaleout's self-check: client-limited"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %.1f / %.1f ms | %.2f s | %.1f | %.0f MB | %.2f s | %.2f s | %.0f%% | %s |\n",
			r.Client, fmtRate(r.Target), thousands(r.Requests), fmtRate(r.Achieved), strings.ReplaceAll(orNone(r.Errors), "|", "/"), lag,
			r.P50MS, r.P99MS, r.CPU.Seconds(), r.CPUPerRequest(), mb(r.MaxRSSKB), r.ServerCPU.Seconds(), r.OtherCPU().Seconds(), 100*r.Idle(), res)
	}
	fmt.Fprintln(b)
}

// jsonBodyLen is the size of the server's non-streamed body.
func jsonBodyLen() int {
	j := render(serveConfig{Tokens: 1, Prompt: promptTokens}).json
	_, body, _ := strings.Cut(string(j), "\r\n\r\n")
	return len(body)
}
