package main

import (
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/timeline"
)

// Issue 11 item 10: what the user typed is checked, and told back in the
// user's terms.

func TestNegativeDurationFlagsExit2(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "s.yaml", "target: {url: http://127.0.0.1:1, model: m}\nload: [{duration: 1s, rate: 1/s}]\n")
	for _, args := range [][]string{
		{"run", p, "--drain", "-1s"},
		{"run", p, "--after=-5s"},
		{"run", p, "--interval", "-1s"},
		{"run", p, "--rest-wait", "-1m"},
		{"run", p, "--guard-wait", "-2s"},
		{"sim", "--hpa-sync", "-1s"},
	} {
		c := newCLI()
		if code := c.run(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, c.stderr.String())
			continue
		}
		if !strings.Contains(c.stderr.String(), "a duration cannot be negative") {
			t.Errorf("%v: no clear message: %s", args, c.stderr.String())
		}
	}
}

func TestOutHoldingARunIsRefused(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "s.yaml", "target: {url: http://"+closedPort(t)+", model: m}\nload: [{duration: 1s, rate: 1/s}]\n")
	out := filepath.Join(dir, "run")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, out, "report.json", `{"version": 1}`)
	writeFile(t, out, "report.html", "old")
	writeFile(t, out, "histograms.json", "{}")
	c := newCLI()
	if code := c.run(t, "run", p, "--out", out); code != exitUsage {
		t.Fatalf("exit %d, want 2\n%s", code, c.stderr.String())
	}
	if msg := c.stderr.String(); !strings.Contains(msg, "already holds a run") || !strings.Contains(msg, "--overwrite") {
		t.Errorf("message: %s", msg)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "report.json")); string(b) != `{"version": 1}` {
		t.Errorf("the old run was touched: %q", b)
	}
	// --overwrite: the old run's files go (the target is down, so the
	// run stops at the preflight: nothing of the old run may be left).
	c = newCLI()
	if code := c.run(t, "run", p, "--out", out, "--overwrite"); code != exitCannotRun {
		t.Fatalf("--overwrite: exit %d, want 3 (target down)\n%s", code, c.stderr.String())
	}
	for _, f := range []string{"report.json", "report.html", "histograms.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err == nil {
			t.Errorf("--overwrite left the old %s", f)
		}
	}
	// An empty directory is no run: it is used as it is.
	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := run.ClaimDir(empty, false); err != nil {
		t.Errorf("an empty --out directory: %v", err)
	}
}

func TestURLHintFollowsTheInput(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "s.yaml", "target: {url: http://127.0.0.1:1, model: m}\nload: [{duration: 1s, rate: 1/s}]\n")
	c := newCLI()
	if code := c.run(t, "check", p, "--prometheus", "localhost:9090"); code != exitUsage {
		t.Fatalf("exit %d, want 2\n%s", code, c.stderr.String())
	}
	if msg := c.stderr.String(); !strings.Contains(msg, "try http://localhost:9090") || strings.Contains(msg, "8000") {
		t.Errorf("hint: %s", msg)
	}
}

// A misspelt load: gets its did-you-mean alone (not first "a scenario
// needs at least one stage"); an expectation on a series the scenario does
// not observe says why it is unknown.
func TestScenarioMistakesSayWhy(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
		not        string
	}{
		{"misspelt load", "laod: [{duration: 1s, rate: 1/s}]\n", []string{"did you mean load?"}, "at least one stage"},
		{"unobserved", "load: [{duration: 1s, rate: 1/s}]\nexpect: [\"desired >= 2 within 1m\"]\n",
			[]string{`"desired" is not observed`, "observes nothing"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "s.yaml", "target: {url: http://127.0.0.1:1, model: m}\n"+tc.yaml)
			c := newCLI()
			if code := c.run(t, "run", p); code != exitUsage {
				t.Fatalf("exit %d, want 2", code)
			}
			msg := c.stderr.String()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("no %q in: %s", w, msg)
				}
			}
			if tc.not != "" && strings.Contains(msg, tc.not) {
				t.Errorf("%q said as well: %s", tc.not, msg)
			}
		})
	}
}

func TestSimAddressInUseSuggestsListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := newCLI()
	done := make(chan int, 1)
	go func() { done <- c.run(t, "sim", "--listen", ln.Addr().String()) }()
	select {
	case code := <-done:
		if code != exitCannotRun {
			t.Errorf("exit %d, want 3", code)
		}
	case <-time.After(30 * time.Second):
		c.signals <- os.Interrupt
		t.Fatal("scaleout sim served on an address in use")
	}
	if msg := c.stderr.String(); !strings.Contains(msg, "--listen") {
		t.Errorf("no --listen hint: %s", msg)
	}
}

func TestReportComparisonFlagsPartial(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, partial bool, p50 float64) string {
		r := &timeline.Report{Version: 1, Scenario: "s", Partial: partial, Verdict: timeline.Pass, Load: timeline.LoadReport{Requests: 100, AchievedRPS: 10.0004}}
		if partial {
			r.PartialReason = "interrupted (Ctrl-C) at 0:42"
		}
		r.Load.TTFT.P50 = &p50
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(d, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := timeline.WriteJSON(f, r); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := mk("a", false, 100), mk("b", true, 99.9999)
	c := newCLI()
	if code := c.run(t, "report", a, b); code != exitOK {
		t.Fatalf("exit %d\n%s", code, c.stderr.String())
	}
	out := c.stdout.String()
	if !strings.Contains(out, "B is a PARTIAL run (interrupted (Ctrl-C) at 0:42)") || !strings.Contains(out, "pass (partial)") {
		t.Errorf("the partial run is not flagged:\n%s", out)
	}
	if strings.Contains(out, "-0.0%") {
		t.Errorf("-0.0%% printed:\n%s", out)
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "cfc2acad4bf4352b2ae017d73eb7d07abe291148"},
		{Key: "vcs.time", Value: "2026-12-03T06:32:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	if got, want := versionOf(bi), "devel commit cfc2acad4bf4 (modified) 2026-12-03T06:32:00Z"; got != want {
		t.Errorf("version %q, want %q", got, want)
	}
	// Go stamps a pseudo-version from the commit: it is not named twice.
	bi.Main.Version = "v0.0.0-20261203063200-cfc2acad4bf4"
	if got, want := versionOf(bi), "v0.0.0-20261203063200-cfc2acad4bf4 (modified) 2026-12-03T06:32:00Z"; got != want {
		t.Errorf("version %q, want %q", got, want)
	}
	if got := versionOf(&debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}); got != "v1.2.0" {
		t.Errorf("a module version: %q", got)
	}
	if got := versionOf(&debug.BuildInfo{}); !strings.Contains(got, "no commit recorded") {
		t.Errorf("no VCS settings: %q", got)
	}
}
