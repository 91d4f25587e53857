package run

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/internal/atomicfile"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/timeline"
)

// writeShardDir writes shard k of n's run directory: one stage of 1/s for
// a second, one request sent on time, and what change does to its report.
func writeShardDir(t *testing.T, dir string, k, n int, start time.Time, change func(*timeline.Report)) string {
	t.Helper()
	tl := timeline.New(timeline.Config{Interval: time.Second,
		Stages: []timeline.StagePlan{{Name: "s", Plan: "1/s for 1s", Duration: time.Second, RateFrom: 1, RateTo: 1}}})
	tl.StageStarted(0, 0)
	tl.AddRequest(&measure.Request{Stage: 0, Seq: uint64(k), Scheduled: 0, Sent: 0, TTFT: 5 * time.Millisecond, E2E: 10 * time.Millisecond,
		Events: 1, PromptTokens: 4, OutputTokens: 1, Status: 200})
	tl.StageEnded(0, time.Second, timeline.ByDuration)
	tl.LoadStopped(time.Second, "")
	rep := tl.Report(time.Second, timeline.Meta{Scenario: "s", Started: start})
	timeline.CheckClient(rep)
	change(rep)
	h := tl.Histograms(time.Second)
	h.Scenario, h.Shard = "s", &timeline.ShardInfo{Index: k, Count: n, StartAt: start}
	d := filepath.Join(dir, fmt.Sprintf("shard%d", k))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf(`{"stage":"s","seq":%d,"sent_ms":0,"e2e_ms":10}`+"\n", k)
	if err := os.WriteFile(filepath.Join(d, "requests.jsonl"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (&runDir{dir: d, fs: atomicfile.OS}).writeReport(rep, h); err != nil {
		t.Fatal(err)
	}
	return d
}

// What one shard decided alone fails the merged run: shard 0's strict
// guard that failed, and a shard whose own client fell short (the merged
// load, two requests of two planned, is on time).
func TestMergeKeepsShardOutcomes(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	lateLag := 80.0
	dirs := []string{
		writeShardDir(t, dir, 0, 2, start, func(r *timeline.Report) {
			r.Expectations = append(r.Expectations, timeline.Outcome{Expr: strictGuardExpr, Detail: "still un-paused"})
		}),
		writeShardDir(t, dir, 1, 2, start, func(r *timeline.Report) {
			r.ClientLimited = &timeline.ClientLimited{Stages: []timeline.LimitedStage{{Stage: "s", LagP99MS: &lateLag, Late: true, Reasons: []string{"sends late"}}}}
		}),
	}
	out := filepath.Join(dir, "merged")
	rep, err := Merge(dirs, out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Load.Requests != 2 || rep.RequestsJSONL == nil || *rep.RequestsJSONL != 2 {
		t.Fatalf("merged %d requests, %v lines: want 2 and 2", rep.Load.Requests, rep.RequestsJSONL)
	}
	failed := map[string]bool{}
	for _, o := range rep.Expectations {
		if !o.OK {
			failed[o.Expr] = true
		}
	}
	if !failed[strictGuardExpr] || !failed["shard 1/2: the client delivered its share of the load"] || len(failed) != 2 {
		t.Errorf("failed outcomes %v: want shard 0's guard and shard 1's client", failed)
	}
	if cl := rep.ClientLimited; cl == nil || len(cl.Stages) != 1 || !strings.HasSuffix(cl.Stages[0].Stage, "(shard 1/2)") {
		t.Errorf("client_limited %+v: want shard 1's stage alone", cl)
	}
	if rep.Verdict != timeline.Fail {
		t.Errorf("verdict %s, want fail", rep.Verdict)
	}
	if _, err := os.Stat(filepath.Join(out, "histograms.json")); err != nil {
		t.Error(err)
	}
}
