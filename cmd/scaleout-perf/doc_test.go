//go:build linux

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// docs/perf.md comes from this command alone: each line of its prose (all
// but table rows, code blocks and run-time messages), numbers aside, is a
// line markdown() writes for a run with the flags on the file's command row.
func TestPerfDocIsGenerated(t *testing.T) {
	doc, err := os.ReadFile("../../docs/perf.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| command \\| `([^`]+)` \\|$").FindSubmatch(doc)
	if row == nil {
		t.Fatal("docs/perf.md: no `| command | ... |` row")
	}
	args := strings.Fields(string(row[1]))
	if args[0] == "go" { // go run ./cmd/scaleout-perf ARGS
		args = args[3:]
	} else {
		args = args[1:]
	}
	opt, err := parseOptions(args)
	if err != nil {
		t.Fatalf("docs/perf.md's command row: %v", err)
	}
	written := map[string]bool{}
	for _, s := range sampleSuites(opt) {
		for _, l := range strings.Split(s.markdown(), "\n") {
			written[masked(l)] = true
		}
	}
	runMessage := regexp.MustCompile(`^(Note: |Skipped: |- (rate|cpu|rss) \()`)
	code := false
	for i, l := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(l, "```") {
			code = !code
			continue
		}
		if code || l == "" || strings.HasPrefix(l, "|") || runMessage.MatchString(l) {
			continue
		}
		if !written[masked(l)] {
			t.Errorf("docs/perf.md:%d is not written by the perf command (edit cmd/scaleout-perf/report.go, then make perf):\n%s", i+1, l)
		}
	}
}

var number = regexp.MustCompile(`[0-9][0-9.,]*`)

func masked(l string) string { return number.ReplaceAllString(l, "#") }

// sampleSuites are runs of every section with opt, one for each way a rate
// search can end.
func sampleSuites(opt options) []*suite {
	var out []*suite
	for _, rates := range [][]probeOutcome{
		{{1000, true}, {2000, false}},
		{{1000, true}},
		{{1000, false}},
	} {
		s := &suite{opt: opt, m: machine{Cores: 2, NoFileHard: 1 << 20}, loadAt: []string{"end: 0"}}
		s.rate = &rateResult{duration: opt.rateDuration, tol: opt.rateTol, search: map[string]*rateSearch{}}
		for _, c := range clientsOrder {
			srch := &rateSearch{Start: opt.rateStart, Max: opt.rateMax, Tol: opt.rateTol}
			for _, r := range rates {
				srch.Record(r.Rate, r.Pass)
			}
			s.rate.search[c] = srch
		}
		s.cpu = &cpuResult{rate: opt.cpuRate, duration: opt.cpuDuration, baseline: map[string]outcome{}}
		s.rss = &rssResult{streams: opt.streams, hold: opt.hold, tokens: 2, vegeta: outcome{Client: "vegeta"}}
		var ms runtime.MemStats
		s.profiles = []profileResult{
			{Name: "rate", Kind: "cpu", Load: load{Rate: targetRate, Duration: opt.rateDuration, MaxTokens: 1}.label()},
			{Name: "cpu", Kind: "cpu", Load: load{Stream: true, Rate: opt.cpuRate, Duration: opt.cpuDuration, MaxTokens: 64}.label()},
			{Name: "rss", Kind: "heap", Load: load{Stream: true, Concurrency: opt.streams, Duration: opt.hold}.label(),
				Mem: heapNote(opt.hold*8/10, 1, 1, &ms, 1)},
		}
		for i, p := range s.profiles {
			s.profiles[i].File = filepath.Join(opt.profile, p.Name+"."+p.Kind+".pprof")
			s.profiles[i].TopFile = filepath.Join(opt.profile, p.Name+"."+p.Kind+".top.txt")
		}
		s.started = time.Now()
		out = append(out, s)
	}
	return out
}
