//go:build linux

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/measure"
)

// load is one client run's load, the same for both clients.
type load struct {
	Name        string
	URL         string
	Stream      bool
	MaxTokens   int
	Rate        float64 // open loop; 0 with Concurrency
	Concurrency int     // closed loop
	Duration    time.Duration
	Timeout     time.Duration // whole-request timeout, the same policy for both clients; 0: none
}

// Request shape shared by both clients.
const (
	promptTokens = 8
	bodySeed     = 1
	maxInFlight  = 10000 // scaleout's max_in_flight: never what holds a run back here
)

// scenarioYAML is the scaleout scenario for a load: no observation, one
// stage.
func scenarioYAML(l load) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\n", l.Name)
	fmt.Fprintf(&b, "description: scaleout perf suite (cmd/scaleout-perf)\n")
	fmt.Fprintf(&b, "target:\n  url: %s\n  api: completions\n  model: %s\n  stream: %t\n", l.URL, serveModel, l.Stream)
	fmt.Fprintf(&b, "request:\n  prompt_tokens: %d\n  max_tokens: %d\n  ignore_eos: true\n  seed: %d\n", promptTokens, l.MaxTokens, bodySeed)
	if l.Concurrency > 0 {
		fmt.Fprintf(&b, "load:\n  - {name: %s, duration: %s, concurrency: %d}\n", l.Name, durationYAML(l.Duration), l.Concurrency)
	} else {
		fmt.Fprintf(&b, "load:\n  - {name: %s, duration: %s, rate: %s/s}\n", l.Name, durationYAML(l.Duration), strconv.FormatFloat(l.Rate, 'f', -1, 64))
	}
	fmt.Fprintf(&b, "max_in_flight: %d\n", max(maxInFlight, l.Concurrency))
	if l.Timeout > 0 {
		fmt.Fprintf(&b, "request_timeout: %s\n", durationYAML(l.Timeout))
	}
	return b.String()
}

// durationYAML prints a duration the scenario reader takes: whole
// milliseconds.
func durationYAML(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// bodies renders the request bodies exactly as scaleout does for the
// scenario (loadgen.NewBodies with the same spec and seed), so vegeta sends
// the same bytes.
func bodies(stream bool, maxTokens int) (*loadgen.Bodies, error) {
	return loadgen.NewBodies(loadgen.RequestSpec{
		API: loadgen.APICompletions, Model: serveModel, Stream: stream,
		MaxTokens: measure.Fixed(maxTokens), IgnoreEOS: true,
		Prompts: loadgen.Synthetic(measure.Fixed(promptTokens), bodySeed), Seed: bodySeed,
	})
}

// vegetaTargets is a targets file in vegeta's JSON format: one target per
// body of the pool, in pool order (vegeta goes round them).
func vegetaTargets(url string, b *loadgen.Bodies) []byte {
	type target struct {
		Method string              `json:"method"`
		URL    string              `json:"url"`
		Body   string              `json:"body"`
		Header map[string][]string `json:"header"`
	}
	var out []byte
	for i := range b.Len() {
		line, _ := json.Marshal(target{
			Method: "POST", URL: url + b.Path(),
			Body:   base64.StdEncoding.EncodeToString(b.Body(uint64(i))),
			Header: map[string][]string{"Content-Type": {"application/json"}},
		})
		out = append(append(out, line...), '\n')
	}
	return out
}

// clients runs the two clients.
type clients struct {
	scaleout, vegeta string // binaries
	tmp              string // scratch directory
	keep             bool   // keep run directories and results files
	n                int    // runs so far, for unique names
}

// childLimit bounds a client process: the load, the drain and the report.
func childLimit(l load) time.Duration { return l.Duration + 2*l.Timeout + 90*time.Second }

// runScaleout runs `scaleout run` on a generated scenario and reads its
// report.json.
func (c *clients) runScaleout(ctx context.Context, srv *serverProc, l load) outcome {
	c.n++
	l.URL = srv.URL()
	o := outcome{Client: "scaleout", Target: l.Rate, Duration: l.Duration}
	scen := filepath.Join(c.tmp, fmt.Sprintf("%03d-%s.yaml", c.n, l.Name))
	dir := filepath.Join(c.tmp, fmt.Sprintf("%03d-%s-run", c.n, l.Name))
	if err := os.WriteFile(scen, []byte(scenarioYAML(l)), 0o644); err != nil {
		o.Fail = err.Error()
		return o
	}
	cpu0 := srv.cpu()
	res := runChild(ctx, childLimit(l), c.scaleout, "run", scen, "--quiet", "--no-preflight", "--out", dir)
	o.ServerCPU = srv.cpu() - cpu0
	o.CPU, o.MaxRSSKB, o.Wall = res.CPU, res.MaxRSSKB, res.Wall
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	switch {
	case err != nil && res.Err != nil:
		o.Fail = fmt.Sprintf("scaleout run: %v: %s", res.Err, lastLine(res.Stderr))
	case err != nil:
		o.Fail = "no report.json: " + err.Error()
	default:
		r, perr := parseScaleoutReport(raw)
		if perr != nil {
			o.Fail = perr.Error()
			break
		}
		scaleoutOutcome(&o, r)
		// Exit 1 is scaleout's verdict "fail" (its client self-check found
		// the load short or late): the report stands, Pass judges it.
		if res.Err != nil && !exitCode(res.Err, 1) {
			o.Fail = fmt.Sprintf("scaleout run: %v: %s", res.Err, lastLine(res.Stderr))
		}
	}
	if !c.keep {
		_ = os.RemoveAll(dir)
		_ = os.Remove(scen)
	}
	return o
}

// runVegeta runs `vegeta attack` (measured) and `vegeta report` (not).
func (c *clients) runVegeta(ctx context.Context, srv *serverProc, l load) outcome {
	c.n++
	o := outcome{Client: "vegeta", Target: l.Rate, Duration: l.Duration}
	b, err := bodies(l.Stream, l.MaxTokens)
	if err != nil {
		o.Fail = err.Error()
		return o
	}
	targets := filepath.Join(c.tmp, fmt.Sprintf("%03d-%s.targets.jsonl", c.n, l.Name))
	results := filepath.Join(c.tmp, fmt.Sprintf("%03d-%s.results.bin", c.n, l.Name))
	if err := os.WriteFile(targets, vegetaTargets(srv.URL(), b), 0o644); err != nil {
		o.Fail = err.Error()
		return o
	}
	cpu0 := srv.cpu()
	res := runChild(ctx, childLimit(l), c.vegeta, vegetaAttackArgs(l, targets, results)...)
	o.ServerCPU = srv.cpu() - cpu0
	o.CPU, o.MaxRSSKB, o.Wall = res.CPU, res.MaxRSSKB, res.Wall
	if res.Err != nil {
		o.Fail = fmt.Sprintf("vegeta attack: %v: %s", res.Err, lastLine(res.Stderr))
	} else {
		rep := runChild(ctx, 5*time.Minute, c.vegeta, "report", "-type=json", results)
		if rep.Err != nil {
			o.Fail = fmt.Sprintf("vegeta report: %v: %s", rep.Err, lastLine(rep.Stderr))
		} else if r, err := parseVegetaReport([]byte(rep.Stdout)); err != nil {
			o.Fail = err.Error()
		} else {
			vegetaOutcome(&o, r)
			if l.Rate > 0 {
				if lag, err := vegetaSendLag(results, l.Rate); err == nil {
					o.SendLagMS = lag
				}
			}
		}
	}
	if !c.keep {
		_ = os.Remove(results)
		_ = os.Remove(targets)
	}
	return o
}

// vegetaAttackArgs are the arguments of `vegeta attack` for a load: vegeta's
// defaults except the rate, the duration, the timeout (the same policy as
// scaleout's request_timeout) and -max-body=0 (vegeta still reads every
// body to its end but keeps none of it in its results, as scaleout keeps
// none).
func vegetaAttackArgs(l load, targets, results string) []string {
	args := []string{"attack",
		"-duration=" + l.Duration.String(),
		"-targets=" + targets, "-format=json",
		"-max-body=0",
		"-timeout=" + l.Timeout.String(),
		"-output=" + results,
	}
	if l.Concurrency > 0 {
		n := strconv.Itoa(l.Concurrency)
		args = append(args, "-rate=0", "-workers="+n, "-max-workers="+n)
	} else {
		args = append(args, "-rate="+strconv.FormatFloat(l.Rate, 'f', 0, 64)+"/s")
	}
	return args
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// exitCode tells whether err is a process exit with this code.
func exitCode(err error, code int) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}
