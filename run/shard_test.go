package run

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

func shardPlan(sh Shard) *Plan {
	s := &scenario.Scenario{Name: "s", File: "s.yaml", Load: []scenario.Stage{
		{Name: "flat", Duration: 10 * time.Second, RateFrom: 7, RateTo: 7},
		{Name: "ramp", Duration: 10 * time.Second, RateFrom: 1, RateTo: 20},
		{Name: "poisson", Duration: 10 * time.Second, RateFrom: 9, RateTo: 9, Poisson: true},
		{Name: "loop", Duration: 10 * time.Second, Concurrency: 11},
	}}
	s.Observe.RestWait = 6 * time.Minute
	s.Observe.Interval = time.Second
	s.Request.Seed = 5
	return &Plan{Scenario: s, shard: sh}
}

// The plan's stages, shard by shard, add up to the whole plan's: every
// open-loop stage's hits, and a closed loop's concurrency; the shards'
// planned rates add up to the whole's.
func TestShardPlanAddsUp(t *testing.T) {
	const n = 3
	whole := shardPlan(Shard{})
	wholeCfg := whole.timelineConfig()
	for i := range whole.Scenario.Load {
		ws := whole.loadStage(i)
		var due uint64
		var conc int
		var rate float64
		for k := range n {
			p := shardPlan(Shard{Index: k, Count: n, StartAt: time.Now().Add(time.Hour)})
			st := p.loadStage(i)
			conc += st.Concurrency
			if st.Schedule != nil {
				due += loadgen.Due(st.Schedule, st.Duration)
			}
			rate += p.timelineConfig().Stages[i].RateTo
		}
		if ws.Concurrency > 0 {
			if conc != ws.Concurrency {
				t.Errorf("stage %s: the shards' concurrency adds to %d, want %d", ws.Name, conc, ws.Concurrency)
			}
			continue
		}
		if want := loadgen.Due(ws.Schedule, ws.Duration); due != want {
			t.Errorf("stage %s: the shards send %d hits, the whole stage %d", ws.Name, due, want)
		}
		if w := wholeCfg.Stages[i].RateTo; rate < w-1e-9 || rate > w+1e-9 {
			t.Errorf("stage %s: the shards' planned rates add to %g, want %g", ws.Name, rate, w)
		}
	}
}

// Shard 0 waits for rest no later than the common start; the others not
// at all; a whole run as long as the scenario says.
func TestShardRestLimit(t *testing.T) {
	start := time.Now().Add(30 * time.Second)
	for _, tc := range []struct {
		sh       Shard
		min, max time.Duration
	}{
		{Shard{}, 6 * time.Minute, 6 * time.Minute},
		{Shard{Index: 0, Count: 4, StartAt: start}, 25 * time.Second, 30 * time.Second},
		{Shard{Index: 2, Count: 4, StartAt: start}, 0, 0},
		{Shard{Index: 0, Count: 4, StartAt: time.Now().Add(-time.Second)}, 0, 0},
	} {
		r := &runner{p: shardPlan(tc.sh)}
		if got := r.restLimit(); got < tc.min || got > tc.max {
			t.Errorf("shard %s: rest limit %s, want %s…%s", tc.sh, got, tc.min, tc.max)
		}
		if guards := r.p.guards(); guards != (tc.sh.Index == 0) {
			t.Errorf("shard %s: guards %t", tc.sh, guards)
		}
	}
}

// A shard's epoch is the common start on the monotonic clock; one that
// reaches it more than a second late refuses (exit 3).
func TestShardEpoch(t *testing.T) {
	start := time.Now().Add(2 * time.Second).Round(0)
	r := &runner{p: shardPlan(Shard{Index: 1, Count: 2, StartAt: start})}
	epoch, err := r.epoch()
	if err != nil {
		t.Fatal(err)
	}
	if d := epoch.Round(0).Sub(start); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("epoch %s off the start", d)
	}
	if until := time.Until(epoch); until < time.Second || until > 2*time.Second {
		t.Errorf("the epoch is %s ahead on the monotonic clock, want about 2s", until)
	}
	late := &runner{p: shardPlan(Shard{Index: 1, Count: 2, StartAt: time.Now().Add(-3 * time.Second)})}
	_, err = late.epoch()
	var re *Error
	if !errors.As(err, &re) || re.Class != CannotRun || !strings.Contains(err.Error(), "later --start-at") {
		t.Errorf("a start 3s past: %v, want a cannot-run error asking for a later --start-at", err)
	}
}

// The stages move on the common clock: a stage that ran its duration
// hands over at its planned end, one ended by until at the sample.
func TestShardStageClock(t *testing.T) {
	r := &runner{p: shardPlan(Shard{Index: 0, Count: 2, StartAt: time.Now().Add(time.Hour)})}
	epoch := time.Now()
	at, off := r.stageStart(epoch)
	if off != 0 || !at.Equal(epoch) {
		t.Fatalf("stage 0 starts at %s", off)
	}
	r.stageEnded(0, off, timeline.ByDuration)
	if _, off = r.stageStart(epoch); off != 10*time.Second {
		t.Errorf("stage 1 starts at %s, want 10s", off)
	}
	r.clock.untilAt.Store(int64(13500 * time.Millisecond))
	r.stageEnded(1, off, timeline.ByUntil)
	if _, off = r.stageStart(epoch); off != 13500*time.Millisecond {
		t.Errorf("stage 2 starts at %s, want the until's sample at 13.5s", off)
	}
}

func TestParseShard(t *testing.T) {
	now := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	sh, err := ParseShard("3/4", "2026-12-03T07:05:00Z", now)
	if err != nil || sh.Index != 3 || sh.Count != 4 || !sh.StartAt.Equal(now.Add(5*time.Minute)) {
		t.Errorf("3/4: %+v %v", sh, err)
	}
	if sh, err := ParseShard("", "", now); err != nil || sh.Sharded() {
		t.Errorf("no flags: %+v %v", sh, err)
	}
	for _, tc := range [][3]string{
		{"4/4", "2026-12-03T07:05:00Z", "0 ≤ K < N"},
		{"0/0", "2026-12-03T07:05:00Z", "0 ≤ K < N"},
		{"a/4", "2026-12-03T07:05:00Z", "want K/N"},
		{"1/4", "07:05", "RFC 3339"},
		{"1/4", "2026-12-03T06:00:00Z", "is 1h in the past"},
		{"1/4", "", "needs --start-at"},
		{"", "2026-12-03T07:05:00Z", "needs --shard"},
	} {
		_, err := ParseShard(tc[0], tc[1], now)
		var re *Error
		if !errors.As(err, &re) || re.Class != Usage || !strings.Contains(err.Error(), tc[2]) {
			t.Errorf("--shard %q --start-at %q: %v, want a usage error saying %q", tc[0], tc[1], err, tc[2])
		}
	}
}
