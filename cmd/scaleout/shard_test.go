package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/timeline"
)

// cliEnv makes the test binary run as the scaleout command: the shard
// proof starts real processes without building anything.
const cliEnv = "SCALEOUT_TEST_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// proc is scaleout running in a process of its own.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error
}

func startCLI(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), cliEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	})
	return p
}

// wait returns the process's exit code, failing the test after limit.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("%v still running after %s\nstderr:\n%s", p.cmd.Args[1:], limit, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// simURL starts scaleout sim on a free loopback port and returns its URL.
func simURL(t *testing.T, args ...string) string {
	t.Helper()
	p := startCLI(t, append([]string{"sim", "--listen", "127.0.0.1:0"}, args...)...)
	re := regexp.MustCompile(`on (http://\S+) `)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			return m[1]
		}
		select {
		case <-p.done:
			t.Fatalf("scaleout sim exited: %v\n%s", p.err, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("scaleout sim did not say where it serves:\n%s", p.stdout.String())
	return ""
}

// runShards runs n shards of one run as n processes (args and the shard
// flags), started together lead from now, and returns their run
// directories under dir. A shard may exit 1: its own self-check found its
// sends late (a busy machine); its records are whole all the same.
func runShards(t *testing.T, dir string, n int, lead time.Duration, args ...string) []string {
	t.Helper()
	start := time.Now().Add(lead).UTC().Format(time.RFC3339Nano)
	var dirs []string
	var procs []*proc
	for k := range n {
		d := filepath.Join(dir, fmt.Sprintf("shard%d", k))
		dirs = append(dirs, d)
		procs = append(procs, startCLI(t, append(slices.Clone(args), "--out", d, "-q", "--shard", fmt.Sprintf("%d/%d", k, n), "--start-at", start)...))
	}
	for k, p := range procs {
		if code := p.wait(t, 2*time.Minute); code != 0 && code != 1 {
			t.Fatalf("shard %d: exit %d\n%s", k, code, p.stderr.String())
		}
	}
	return dirs
}

// mergeShards merges the shards' run directories into dir/merged.
func mergeShards(t *testing.T, dir string, dirs []string) string {
	t.Helper()
	merged := filepath.Join(dir, "merged")
	c := newCLI()
	if code := c.run(t, append(append([]string{"report", "merge"}, dirs...), "--out", merged, "-q")...); code != 0 && code != 1 {
		t.Fatalf("merge: exit %d\n%s", code, c.stderr.String())
	}
	return merged
}

func readHistograms(t *testing.T, dir string) *timeline.Histograms {
	t.Helper()
	return readRunFile(t, dir, "histograms.json", timeline.ReadHistograms)
}

// readRunFile reads the file name of a run directory with read.
func readRunFile[T any](t *testing.T, dir, name string, read func(io.Reader) (T, error)) T {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := read(f)
	if err != nil {
		t.Fatalf("%s: %v", f.Name(), err)
	}
	return v
}

// line is what the proof reads of a requests.jsonl line.
type line struct {
	Stage  string   `json:"stage"`
	Seq    uint64   `json:"seq"`
	Sched  *float64 `json:"sched_ms"`
	Sent   float64  `json:"sent_ms"`
	E2E    float64  `json:"e2e_ms"`
	Output *int     `json:"output_tokens"`
	Error  string   `json:"error"`
}

func readLines(t *testing.T, path string) []line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, l)
	}
	return out
}

// shardScenario is the proof's scenario: constant, ramp and Poisson stages
// whose last hit is due well before each stage's end (a hit due in the
// stage's last milliseconds may miss it on a busy machine, in either run),
// at modest rates: the machine is small and shared.
func shardScenario(t *testing.T) string {
	t.Helper()
	du := 3 * time.Second
	seed := uint64(1)
	for ; ; seed++ { // the Poisson stage (index 2) is seeded seed+2
		s := loadgen.Poisson(loadgen.Constant(12, du), seed+2)
		if n := loadgen.Due(s, du); n > 0 && s.At(n-1) < du-150*time.Millisecond {
			break
		}
	}
	return fmt.Sprintf(`name: shards
target: {url: "http://127.0.0.1:1", api: completions, stream: true}
request: {prompt_tokens: 16, max_tokens: 6, ignore_eos: true, seed: %d}
load:
  - {name: steady, duration: 3s, rate: 10/s}
  - {name: ramp, duration: 3s, rate: 4/s..16/s}
  - {name: burst, duration: 3s, rate: 12/s, arrivals: poisson}
observe: {interval: 1s}
`, seed)
}

// Four shards as four processes against one scaleout sim, started
// together and merged, send what one process sends: the same requests
// (stage and sequence number, one for one), each within the send-lag
// tolerance of the single run's schedule, and the same token totals.
func TestShardsMergeToTheSingleRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: five processes")
	}
	dir := t.TempDir()
	url := simURL(t, "--replicas-start", "4", "--replicas-min", "4", "--replicas-max", "4", "--max-num-seqs", "64", "--ttft", "5ms", "--itl", "2ms")
	path := writeFile(t, dir, "shards.yaml", shardScenario(t))

	single := filepath.Join(dir, "single")
	p := startCLI(t, "run", path, "--target", url, "--out", single, "-q")
	if code := p.wait(t, 2*time.Minute); code != 0 && code != 1 {
		t.Fatalf("the single run: exit %d\n%s", code, p.stderr.String())
	}

	// Far enough ahead for four processes to start and preflight on a
	// busy machine.
	dirs := runShards(t, dir, 4, 8*time.Second, "run", path, "--target", url)
	merged := mergeShards(t, dir, dirs)

	s, m := readReportFile(t, single), readReportFile(t, merged)
	if m.Load.Requests == 0 || m.Load.Requests != s.Load.Requests || m.Load.OK != s.Load.OK {
		t.Errorf("requests: merged %d (%d ok), single %d (%d ok)", m.Load.Requests, m.Load.OK, s.Load.Requests, s.Load.OK)
	}
	if m.Load.OutputTokens != s.Load.OutputTokens || m.Load.PromptTokens != s.Load.PromptTokens || m.Load.OutputTokens != 6*m.Load.OK {
		t.Errorf("tokens: merged %d out %d in, single %d out %d in", m.Load.OutputTokens, m.Load.PromptTokens, s.Load.OutputTokens, s.Load.PromptTokens)
	}
	// The plan: the requests each stage's schedule had due, added over the
	// shards, are the single run's (histograms.json keeps them exactly; the
	// rates divide them by the stage's span, which a shard descheduled at
	// the stage's end on a busy machine stretches).
	sh, mh := readHistograms(t, single), readHistograms(t, merged)
	for i := range s.Stages {
		ms, ss := m.Stages[i], s.Stages[i]
		if ms.Requests != ss.Requests || mh.Stages[i].Planned != sh.Stages[i].Planned || ss.Requests != int64(sh.Stages[i].Planned) {
			t.Errorf("stage %s: merged %d requests of %g planned, single %d of %g", ss.Name, ms.Requests, mh.Stages[i].Planned, ss.Requests, sh.Stages[i].Planned)
		}
	}
	if m.Load.TTFT.N != s.Load.TTFT.N || m.Load.E2E.N != m.Load.OK {
		t.Errorf("distributions: merged ttft n %d e2e n %d, single ttft n %d", m.Load.TTFT.N, m.Load.E2E.N, s.Load.TTFT.N)
	}

	// The schedule, request for request: each hit due at the same offset
	// into its stage. (A single run's stage starts when the one before has
	// returned, a busy machine's moment later than planned; a shard's on
	// the common clock. Their schedules are compared, not those moments.)
	stageStart := func(r *timeline.Report) map[string]float64 {
		at := map[string]float64{}
		for _, st := range r.Stages {
			at[st.Name] = st.StartS * 1000
		}
		return at
	}
	singleStart, mergedStart := stageStart(s), stageStart(m)
	type key struct {
		stage string
		seq   uint64
	}
	want := map[key]line{}
	for _, l := range readLines(t, filepath.Join(single, "requests.jsonl")) {
		want[key{l.Stage, l.Seq}] = l
	}
	got := readLines(t, filepath.Join(merged, "requests.jsonl"))
	if len(got) != len(want) || int64(len(got)) != m.Load.Requests || m.RequestsJSONL == nil || *m.RequestsJSONL != m.Load.Requests {
		t.Errorf("requests.jsonl: merged %d lines (report says %v of %d), single %d", len(got), m.RequestsJSONL, m.Load.Requests, len(want))
	}
	seen := map[key]bool{}
	lastDone := -1.0
	for _, l := range got {
		k := key{l.Stage, l.Seq}
		w, ok := want[k]
		switch {
		case seen[k]:
			t.Errorf("stage %s seq %d sent twice by the shards", l.Stage, l.Seq)
		case !ok:
			t.Errorf("stage %s seq %d: sent by a shard, not by the single run", l.Stage, l.Seq)
		case l.Sched == nil || w.Sched == nil:
			t.Errorf("stage %s seq %d: no schedule", l.Stage, l.Seq)
		case math.Abs((*l.Sched-mergedStart[l.Stage])-(*w.Sched-singleStart[w.Stage])) > timeline.LagLimitMS:
			t.Errorf("stage %s seq %d: due %.1f ms into the stage in the shards, %.1f ms in the single run", l.Stage, l.Seq,
				*l.Sched-mergedStart[l.Stage], *w.Sched-singleStart[w.Stage])
		}
		seen[k] = true
		if done := l.Sent + l.E2E; done < lastDone-1 {
			t.Errorf("merged requests.jsonl is out of time order at stage %s seq %d", l.Stage, l.Seq)
		} else {
			lastDone = max(lastDone, done)
		}
	}
	for _, name := range []string{"report.json", "timeline.csv", "report.html", "histograms.json", "scenario.yaml"} {
		if _, err := os.Stat(filepath.Join(merged, name)); err != nil {
			t.Errorf("the merged run directory lacks %s", name)
		}
	}
	if !strings.Contains(strings.Join(m.Notes, "\n"), "merged from 4 shards") {
		t.Errorf("notes %q", m.Notes)
	}

	// Not one run's shards: refused, saying what is wrong (exit 2).
	for _, tc := range []struct {
		dirs []string
		want string
	}{
		{[]string{dirs[0], dirs[1], dirs[2]}, "shard 3/4 missing"},
		{[]string{dirs[0], dirs[1], dirs[2], dirs[3], dirs[1]}, "both shard 1/4"},
		{append([]string{single}, dirs...), "not a shard"},
		{[]string{dir}, "no report.json"},
		{[]string{dirs[0], dirs[1], dirs[2], dirs[3], "--out", dirs[2]}, "a directory of its own"},
	} {
		if !slices.Contains(tc.dirs, "--out") {
			tc.dirs = append(tc.dirs, "--out", filepath.Join(dir, "bad"))
		}
		c := newCLI()
		if code := c.run(t, append([]string{"report", "merge"}, tc.dirs...)...); code != 2 || !strings.Contains(c.stderr.String(), tc.want) {
			t.Errorf("merge %v: exit %d, stderr %q; want 2 and %q", tc.dirs, code, c.stderr.String(), tc.want)
		}
	}
}

// --shard and --start-at are checked before anything runs (exit 2).
func TestShardFlagMistakesExit2(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "s.yaml", "name: s\ntarget: {url: \"http://127.0.0.1:1\", model: m}\nload:\n  - {duration: 1s, rate: 1/s}\n")
	sim := writeFile(t, dir, "sim.yaml", "name: s\nsim: {}\nload:\n  - {duration: 1s, rate: 1/s}\n")
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{path, "--shard", "4/4", "--start-at", future}, "0 ≤ K < N"},
		{[]string{path, "--shard", "1-4", "--start-at", future}, "want K/N"},
		{[]string{path, "--shard", "0/4"}, "needs --start-at"},
		{[]string{path, "--start-at", future}, "needs --shard"},
		{[]string{path, "--shard", "0/4", "--start-at", "tomorrow"}, "RFC 3339"},
		{[]string{path, "--shard", "0/4", "--start-at", past}, "in the past"},
		{[]string{sim, "--shard", "0/2", "--start-at", future}, "scaleout sim"},
	} {
		c := newCLI()
		if code := c.run(t, append([]string{"run"}, tc.args...)...); code != 2 || !strings.Contains(c.stderr.String(), tc.want) {
			t.Errorf("run %v: exit %d, stderr %q; want 2 and %q", tc.args, code, c.stderr.String(), tc.want)
		}
	}
}

// An until ends the stage on every shard within one interval, and the
// next stage starts on the common clock: at the sample the until held at.
func TestShardsEndAStageByUntilTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: three processes")
	}
	dir := t.TempDir()
	url := simURL(t, "--replicas-start", "2", "--replicas-min", "2", "--replicas-max", "2", "--ttft", "300ms")
	path := writeFile(t, dir, "until.yaml", `name: until
sim: {replicas: {min: 2, max: 2, start: 2}}
request: {prompt_tokens: 16, max_tokens: 6, ignore_eos: true}
load:
  - {name: a, duration: 30s, rate: 10/s, until: "running >= 1"}
  - {name: b, duration: 1s, rate: 6/s}
observe: {interval: 500ms, after: 0s, scrape: ["`+url+`/metrics"]}
`)
	dirs := runShards(t, dir, 2, 6*time.Second, "run", path, "--target", url)
	var reps []*timeline.Report
	for _, d := range dirs {
		reps = append(reps, readReportFile(t, d))
	}
	for k, r := range reps {
		if a := r.Stages[0]; a.EndedBy != timeline.ByUntil || a.EndS > 20 {
			t.Errorf("shard %d: stage a ended by %s at %gs, want by its until", k, a.EndedBy, a.EndS)
		}
	}
	a0, a1 := reps[0].Stages[0], reps[1].Stages[0]
	b0, b1 := reps[0].Stages[1], reps[1].Stages[1]
	// Each shard decides at a sample tick of the common clock, and b
	// starts at that tick: the shards' ticks are at most one apart. When
	// a stage stopped sending after its tick (a0.EndS) is the machine's
	// scheduling, not the decision, so it is not compared. A sample is
	// taken at its tick or later (a busy machine delays it), never much
	// before: its tick is the interval it falls in.
	iv := reps[0].IntervalS
	tick := func(s float64) int { return int(math.Floor(s/iv + 0.05)) }
	if d := tick(b0.StartS) - tick(b1.StartS); d > 1 || d < -1 {
		t.Errorf("the shards started b at %gs and %gs (ticks %d and %d): want within one interval (%gs)", b0.StartS, b1.StartS, tick(b0.StartS), tick(b1.StartS), iv)
	}
	for k, st := range [][2]timeline.StageReport{{a0, b0}, {a1, b1}} {
		if st[0].EndS < st[1].StartS-iv/2 {
			t.Errorf("shard %d: stage a stopped at %gs, before the tick its until held at (%gs)", k, st[0].EndS, st[1].StartS)
		}
	}
	if b0.Requests+b1.Requests != 6 {
		t.Errorf("stage b sent %d + %d requests, want 6 (6/s for 1s, split)", b0.Requests, b1.Requests)
	}
	merged := mergeShards(t, dir, dirs)
	if m := readReportFile(t, merged); m.Stages[0].EndedBy != timeline.ByUntil || m.Stages[1].Requests != 6 {
		t.Errorf("merged stages %+v", m.Stages)
	}
}
