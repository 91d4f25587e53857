package loadgen

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// hits lists every instant s has a hit due before its end (walking At up
// to the first one at or after du).
func hits(t *testing.T, s Schedule, du time.Duration) []time.Duration {
	t.Helper()
	var out []time.Duration
	for n := uint64(0); ; n++ {
		at := s.At(n)
		if at >= du {
			return out
		}
		if n > 1e6 {
			t.Fatalf("%s: more than a million hits", s)
		}
		out = append(out, at)
	}
}

// union is every shard's hits of s, merged and sorted.
func union(t *testing.T, s Schedule, du time.Duration, n int) (all []time.Duration, counts []int) {
	t.Helper()
	for k := range n {
		sh := Shard{K: k, N: n}.Schedule(s)
		h := hits(t, sh, du)
		if got := Due(sh, du); got != uint64(len(h)) {
			t.Errorf("%s: Due %d, walked %d", sh, got, len(h))
		}
		if !slices.IsSorted(h) {
			t.Errorf("%s: hits out of order", sh)
		}
		all = append(all, h...)
		counts = append(counts, len(h))
	}
	slices.Sort(all)
	return all, counts
}

// The union of the shards' schedules is the single schedule, hit for hit,
// for constant, ramp and Poisson stages, at every shard count; interleaved
// shards differ by at most one hit.
func TestShardUnionIsTheSchedule(t *testing.T) {
	du := 20 * time.Second
	cases := []Schedule{
		Constant(7, du),
		Constant(0.3, du),
		Ramp(1, 40, du),
		Ramp(30, 2, du),
		Poisson(Constant(25, du), 42),
		Poisson(Ramp(2, 50, du), 7),
	}
	for _, s := range cases {
		single := hits(t, s, du)
		for _, n := range []int{1, 2, 3, 4, 7} {
			all, counts := union(t, s, du, n)
			if !slices.Equal(all, single) {
				t.Errorf("%s over %d shards: the union has %d hits, the single schedule %d (or they differ in time)", s, n, len(all), len(single))
				continue
			}
			if _, ok := s.(*poisson); ok {
				continue
			}
			if slices.Max(counts)-slices.Min(counts) > 1 {
				t.Errorf("%s over %d shards: counts %v, want within one of each other", s, n, counts)
			}
		}
	}
}

// Poisson thinning gives each shard about 1/N of the arrivals (a binomial
// count: within 4.5 standard deviations), and each shard's gaps average
// N/λ, as a Poisson process of rate λ/N has them.
func TestShardPoissonThinning(t *testing.T) {
	du := 200 * time.Second
	const rate, n = 50.0, 4
	s := Poisson(Constant(rate, du), 1234)
	total := Due(s, du)
	p := 1.0 / n
	sd := math.Sqrt(float64(total) * p * (1 - p))
	for k := range n {
		sh := Shard{K: k, N: n}.Schedule(s)
		h := hits(t, sh, du)
		if d := math.Abs(float64(len(h)) - float64(total)*p); d > 4.5*sd {
			t.Errorf("shard %d/%d: %d of %d arrivals, want %.0f ± %.0f", k, n, len(h), total, float64(total)*p, 4.5*sd)
		}
		var sum, sq float64
		for i := 1; i < len(h); i++ {
			g := (h[i] - h[i-1]).Seconds()
			sum += g
			sq += g * g
		}
		gaps := float64(len(h) - 1)
		mean := sum / gaps
		cv := math.Sqrt(sq/gaps-mean*mean) / mean // 1 for exponential gaps
		if want := n / rate; math.Abs(mean-want) > 0.05*want {
			t.Errorf("shard %d/%d: mean gap %.4fs, want %.4fs", k, n, mean, want)
		}
		if cv < 0.9 || cv > 1.1 {
			t.Errorf("shard %d/%d: gaps' coefficient of variation %.3f, want about 1 (exponential)", k, n, cv)
		}
		if r := sh.Rate(time.Second); r != rate/n {
			t.Errorf("shard rate %g, want %g", r, rate/n)
		}
	}
	// The same seed, the same split: a fresh schedule gives the same shards.
	a := hits(t, Shard{K: 1, N: n}.Schedule(s), du)
	b := hits(t, Shard{K: 1, N: n}.Schedule(Poisson(Constant(rate, du), 1234)), du)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave a different shard")
	}
}

// A closed loop's concurrency is split with its remainder to the first
// shards; a shard with no share sends nothing for the stage's duration.
func TestShardConcurrency(t *testing.T) {
	for _, c := range []int{1, 3, 8, 10, 13} {
		for _, n := range []int{1, 2, 4, 5} {
			sum := 0
			for k := range n {
				sh := Shard{K: k, N: n}
				st := sh.Split(Stage{Name: "soak", Duration: time.Minute, Concurrency: c})
				if err := st.Validate(); err != nil {
					t.Fatalf("concurrency %d shard %s: %v", c, sh, err)
				}
				want := c / n
				if k < c%n {
					want++
				}
				if st.Concurrency != want {
					t.Errorf("concurrency %d shard %s: %d, want %d", c, sh, st.Concurrency, want)
				}
				if st.Concurrency == 0 && (st.Schedule == nil || Due(st.Schedule, time.Minute) != 0) {
					t.Errorf("concurrency %d shard %s: no share, but a schedule that sends", c, sh)
				}
				sum += st.Concurrency
			}
			if sum != c {
				t.Errorf("concurrency %d over %d shards sums to %d", c, n, sum)
			}
		}
	}
	for _, sh := range []Shard{{K: 4, N: 4}, {K: -1, N: 2}, {K: 0, N: 0}} {
		if sh.Validate() == nil {
			t.Errorf("shard %s passed validation", sh)
		}
	}
}

// tinyServer answers every request with tinyStream.
func tinyServer(t *testing.T) *httptest.Server {
	return newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, tinyStream)
	}))
}

// A stage given a start already past keeps every hit at the instant it
// was due on that clock: the hits due before Run go out at once (late),
// and the stage ends at start + duration.
func TestStageStartInThePast(t *testing.T) {
	ts := tinyServer(t)
	// The epoch a second back: offsets stay positive (a negative Scheduled
	// would read as a closed loop's).
	g, c := newGen(t, ts.URL, testBodies(t, "completions", true, 5), func(c *Config) { c.Epoch = time.Now().Add(-time.Second) })
	start := time.Now().Add(-100 * time.Millisecond)
	st := Stage{Name: "late", Duration: 300 * time.Millisecond, Schedule: Constant(20, 300*time.Millisecond), Start: start}
	if err := g.Run(context.Background(), 0, st); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, g, 5*time.Second)
	recs := c.rest()
	// Hits due at 0, 50, …, 250 ms after the start: all six go, unless a
	// machine busy enough to wake the pacer after the stage's end sends
	// fewer; hit 0, overdue when Run began, goes first in any case.
	if len(recs) < 1 || len(recs) > 6 {
		t.Fatalf("%d requests, want 1 to 6 (6 on a machine not busy)", len(recs))
	}
	w := g.Windows()[0]
	if want := start.Sub(g.cfg.Epoch); w.start != want {
		t.Errorf("stage started at %s, want its given start %s", w.start, want)
	}
	slices.SortFunc(recs, func(a, b *measure.Request) int { return int(a.Seq) - int(b.Seq) })
	for i, r := range recs {
		if want := w.start + time.Duration(i)*50*time.Millisecond; r.Scheduled != want {
			t.Errorf("hit %d scheduled at %s, want %s", i, r.Scheduled, want)
		}
		if r.Sent < r.Scheduled-time.Millisecond {
			t.Errorf("hit %d went out at %s, before its time %s", i, r.Sent, r.Scheduled)
		}
	}
	if recs[0].Lag() < 90*time.Millisecond {
		t.Errorf("hit 0 lag %s: it was due 100 ms before Run", recs[0].Lag())
	}
}

// A stage given a future start waits for it.
func TestStageStartInTheFuture(t *testing.T) {
	ts := tinyServer(t)
	g, c := newGen(t, ts.URL, testBodies(t, "completions", true, 5), nil)
	start := time.Now().Add(150 * time.Millisecond)
	st := Stage{Name: "later", Duration: 100 * time.Millisecond, Schedule: Constant(20, 100*time.Millisecond), Start: start}
	if err := g.Run(context.Background(), 0, st); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, g, 5*time.Second)
	recs := c.rest()
	if len(recs) < 1 || len(recs) > 2 {
		t.Fatalf("%d requests, want 1 or 2 (2 on a machine not busy)", len(recs))
	}
	for _, r := range recs {
		if at := g.cfg.Epoch.Add(r.Sent); at.Before(start.Add(-time.Millisecond)) {
			t.Errorf("hit %d went out %s before the stage's start", r.Seq, start.Sub(at))
		}
	}
}

// A shard's records carry the hit's index in the whole stage (the single
// process's sequence number), and so do the request ids in the bodies:
// two shards never send the same id.
func TestShardRecordsTheWholeStagesSeq(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if i := bytes.Index(b, []byte("[r")); i >= 0 {
			mu.Lock()
			ids = append(ids, string(b[i:i+14]))
			mu.Unlock()
		}
		io.WriteString(w, tinyStream)
	}))
	g, c := newGen(t, ts.URL, testBodies(t, "completions", true, 5), nil)
	du := 300 * time.Millisecond
	for k := range 2 {
		st := Shard{K: k, N: 2}.Split(Stage{Name: "s", Duration: du, Schedule: Constant(20, du)})
		if err := g.Run(context.Background(), 0, st); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, g, 5*time.Second)
	recs := c.rest()
	var seqs []uint64
	for _, r := range recs {
		seqs = append(seqs, r.Seq)
	}
	slices.Sort(seqs)
	if !slices.Equal(seqs, []uint64{0, 1, 2, 3, 4, 5}) {
		t.Errorf("the two shards recorded seqs %v, want 0…5 once each", seqs)
	}
	slices.Sort(ids)
	if len(ids) != 6 || len(slices.Compact(ids)) != 6 {
		t.Errorf("request ids %v: want 6 distinct", ids)
	}
}
