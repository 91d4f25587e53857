package loadgen

import (
	"math"
	"sync"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// hitsUntilStop paces s on a virtual clock (each hit goes exactly when due)
// and returns how many hits it sends before it says stop.
func hitsUntilStop(t *testing.T, p vegeta.Pacer, limit uint64) uint64 {
	t.Helper()
	var elapsed time.Duration
	for n := uint64(0); n < limit; n++ {
		wait, stop := p.Pace(elapsed, n)
		if stop {
			return n
		}
		if wait < 0 {
			t.Fatalf("hit %d: negative wait %s", n, wait)
		}
		elapsed += wait
	}
	t.Fatalf("no stop after %d hits", limit)
	return 0
}

func TestScheduleAt(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		s    Schedule
		n    uint64
		want time.Duration
	}{
		{"constant first hit at 0", Constant(10, time.Second), 0, 0},
		{"constant hit 1", Constant(10, time.Second), 1, 100 * ms},
		{"constant hit 9", Constant(10, time.Second), 9, 900 * ms},
		{"constant hit 3 at 3/s", Constant(3, time.Second), 3, time.Second},
		{"constant 0.5/s", Constant(0.5, time.Minute), 2, 4 * time.Second},
		{"constant 0/s never", Constant(0, time.Minute), 1, never},
		{"constant 0/s not even hit 0", Constant(0, time.Minute), 0, never},
		{"ramp first hit at 0", Ramp(1, 12, 2*time.Minute), 0, 0},
		// Λ(t) = t + 11t²/240: Λ(120 s) = 780, Λ(60 s) = 225, Λ(24 s) = 50.4
		{"ramp 1→12 hit 225 at 60s", Ramp(1, 12, 2*time.Minute), 225, time.Minute},
		{"ramp 1→12 hit 780 at the end", Ramp(1, 12, 2*time.Minute), 780, 2 * time.Minute},
		// Λ(t) = 5t²: hit n at √(n/5)
		{"ramp from 0 hit 5", Ramp(0, 10, time.Second), 5, time.Second},
		{"ramp from 0 hit 1", Ramp(0, 10, time.Second), 1, time.Duration(math.Round(math.Sqrt(0.2) * 1e9))},
		// falling: Λ(t) = 12t − 11t²/240: Λ(120) = 780, Λ(60) = 555
		{"ramp 12→1 hit 555 at 60s", Ramp(12, 1, 2*time.Minute), 555, time.Minute},
		{"ramp 10→0 never reaches hit 6", Ramp(10, 0, time.Second), 6, never},
		{"flat ramp is constant", Ramp(4, 4, time.Second), 2, 500 * ms},
		{"ramp 0→0 never", Ramp(0, 0, time.Second), 1, never},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.At(tt.n)
			if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("%s: At(%d) = %s, want %s", tt.s, tt.n, got, tt.want)
			}
		})
	}
}

func TestSchedulePace(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		p        vegeta.Pacer
		elapsed  time.Duration
		hits     uint64
		wantWait time.Duration
		wantStop bool
	}{
		{"constant first hit now", Constant(10, time.Second), 0, 0, 0, false},
		{"constant waits for hit 1", Constant(10, time.Second), 30 * ms, 1, 70 * ms, false},
		{"constant behind: at once", Constant(10, time.Second), 350 * ms, 2, 0, false},
		{"constant last hit", Constant(10, time.Second), 850 * ms, 9, 50 * ms, false},
		{"constant stops at the duration", Constant(10, time.Second), 900 * ms, 10, 0, true},
		{"constant stops even when early", Constant(10, time.Second), 0, 10, 0, true},
		{"ramp waits", Ramp(0, 10, time.Second), 0, 1, time.Duration(math.Round(math.Sqrt(0.2) * 1e9)), false},
		{"ramp stops at the duration", Ramp(0, 10, time.Second), 900 * ms, 5, 0, true},
		{"closed loop never waits", closedLoop{du: time.Second}, 500 * ms, 1e6, 0, false},
		{"closed loop stops at the duration", closedLoop{du: time.Second}, time.Second, 3, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait, stop := tt.p.Pace(tt.elapsed, tt.hits)
			if stop != tt.wantStop || (!stop && absDur(wait-tt.wantWait) > time.Microsecond) {
				t.Errorf("Pace(%s, %d) = (%s, %t), want (%s, %t)", tt.elapsed, tt.hits, wait, stop, tt.wantWait, tt.wantStop)
			}
		})
	}
}

func TestScheduleHitsPerStage(t *testing.T) {
	tests := []struct {
		name string
		s    Schedule
		want uint64
	}{
		{"10/s for 1s", Constant(10, time.Second), 10},
		{"3/s for 1s", Constant(3, time.Second), 3},
		{"2.5/s for 2s", Constant(2.5, 2*time.Second), 5},
		{"0/s", Constant(0, time.Second), 0},
		{"ramp 1→12 over 2m", Ramp(1, 12, 2*time.Minute), 780},
		{"ramp 12→1 over 2m", Ramp(12, 1, 2*time.Minute), 780},
		{"ramp 0→10 over 1s", Ramp(0, 10, time.Second), 5},
		{"ramp 0→1 over 3s", Ramp(0, 1, 3*time.Second), 2}, // Λ(3) = 1.5: hits at 0 and √6
		{"ramp 0→0", Ramp(0, 0, time.Second), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hitsUntilStop(t, tt.s, 1e6); got != tt.want {
				t.Errorf("%s sent %d hits, want %d", tt.s, got, tt.want)
			}
		})
	}
}

func TestScheduleRate(t *testing.T) {
	tests := []struct {
		name    string
		p       vegeta.Pacer
		elapsed time.Duration
		want    float64
	}{
		{"constant", Constant(10, time.Second), 500 * time.Millisecond, 10},
		{"constant after the end", Constant(10, time.Second), time.Second, 0},
		{"ramp start", Ramp(1, 12, 2*time.Minute), 0, 1},
		{"ramp middle", Ramp(1, 12, 2*time.Minute), time.Minute, 6.5},
		{"ramp falling", Ramp(12, 1, 2*time.Minute), 90 * time.Second, 3.75},
		{"poisson has its base's rate", Poisson(Ramp(1, 12, 2*time.Minute), 1), time.Minute, 6.5},
		{"closed loop has none", closedLoop{du: time.Second}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Rate(tt.elapsed); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Rate(%s) = %g, want %g", tt.elapsed, got, tt.want)
			}
		})
	}
}

func TestScheduleString(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{Constant(10, 30*time.Second).String(), "10/s for 30s"},
		{Constant(0.5, 90*time.Second).String(), "0.5/s for 1m30s"},
		{Constant(100, time.Hour).String(), "100/s for 1h"},
		{Ramp(1, 12, 2*time.Minute).String(), "ramp 1/s→12/s over 2m"},
		{Poisson(Ramp(1, 12, 2*time.Minute), 3).String(), "poisson(ramp 1/s→12/s over 2m)"},
		{Stage{Name: "warmup", Duration: 30 * time.Second, Schedule: Constant(10, 30*time.Second)}.String(), "warmup: 10/s for 30s"},
		{Stage{Name: "soak", Duration: time.Minute, Concurrency: 8}.String(), "soak: 8 concurrent for 1m"},
		{Stage{Duration: time.Minute, Concurrency: 8}.String(), "8 concurrent for 1m"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestPoissonDeterministic(t *testing.T) {
	base := Constant(10, time.Hour)
	a, b, c := Poisson(base, 7), Poisson(base, 7), Poisson(base, 8)
	// Random access order on a (across block boundaries) must not change
	// anything: blocks are regenerated from their own seeded streams.
	idx := []uint64{10000, 5, 4096, 4095, 0, 9000, 1, 20000, 4097}
	got := make(map[uint64]time.Duration)
	for _, n := range idx {
		got[n] = a.At(n)
	}
	for n := range uint64(20001) { // b sequentially
		v := b.At(n)
		if w, ok := got[n]; ok && w != v {
			t.Fatalf("seed 7: At(%d) = %s in random order, %s in sequence", n, w, v)
		}
		if n > 0 && v <= b.At(n-1) {
			t.Fatalf("At(%d) = %s is not after At(%d) = %s", n, v, n-1, b.At(n-1))
		}
	}
	if got[0] <= 0 {
		t.Errorf("At(0) = %s: a Poisson process's first arrival is after 0", got[0])
	}
	same := 0
	for _, n := range idx {
		if c.At(n) == got[n] {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 7 and 8 agree on %d of %d arrivals", same, len(idx))
	}
}

func TestPoissonMeanRate(t *testing.T) {
	tests := []struct {
		name string
		base Schedule
		want float64 // Λ(T): expected hits in the stage
	}{
		{"constant 100/s for 100s", Constant(100, 100*time.Second), 10000},
		{"ramp 10→190/s over 100s", Ramp(10, 190, 100*time.Second), 10000},
	}
	const seeds = 20
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := math.Sqrt(tt.want) // a Poisson count's standard deviation
			var sum float64
			for seed := range uint64(seeds) {
				n := float64(hitsUntilStop(t, Poisson(tt.base, seed), 1e6))
				if math.Abs(n-tt.want) > 5*sd {
					t.Errorf("seed %d: %g hits, want %g ± %g (5σ)", seed, n, tt.want, 5*sd)
				}
				sum += n
			}
			mean := sum / seeds
			if bound := 5 * sd / math.Sqrt(seeds); math.Abs(mean-tt.want) > bound {
				t.Errorf("mean over %d seeds %g hits, want %g ± %g (5σ)", seeds, mean, tt.want, bound)
			}
		})
	}
}

func TestPoissonGapsAreExponential(t *testing.T) {
	// Under a constant rate the gaps are Exp(rate): mean 1/rate and a
	// coefficient of variation of 1 (uniform pacing has 0).
	p := Poisson(Constant(100, time.Hour), 42)
	const n = 20000
	var sum, sumSq float64
	prev := p.At(0)
	for i := uint64(1); i <= n; i++ {
		cur := p.At(i)
		g := (cur - prev).Seconds()
		sum += g
		sumSq += g * g
		prev = cur
	}
	mean := sum / n
	cv := math.Sqrt(sumSq/n-mean*mean) / mean
	if math.Abs(mean-0.01) > 0.01*5/math.Sqrt(n) {
		t.Errorf("mean gap %gs, want 0.01s", mean)
	}
	if math.Abs(cv-1) > 0.05 {
		t.Errorf("coefficient of variation %g, want 1", cv)
	}
}

func TestPoissonStopsAtDuration(t *testing.T) {
	p := Poisson(Constant(50, 2*time.Second), 9)
	n := hitsUntilStop(t, p, 1e6)
	if last := p.At(n - 1); last >= 2*time.Second {
		t.Errorf("last hit %d due at %s, after the stage", n-1, last)
	}
	if next := p.At(n); next < 2*time.Second {
		t.Errorf("stopped at hit %d due at %s, inside the stage", n, next)
	}
}

// foreign is a Schedule from outside the package: no inverse, no Duration.
type foreign struct{ s Schedule }

func (f foreign) Pace(e time.Duration, h uint64) (time.Duration, bool) { return f.s.Pace(e, h) }
func (f foreign) Rate(e time.Duration) float64                         { return f.s.Rate(e) }
func (f foreign) At(n uint64) time.Duration                            { return f.s.At(n) }
func (f foreign) String() string                                       { return "foreign" }

func TestPoissonOfForeignSchedule(t *testing.T) {
	base := Constant(10, time.Second)
	want, got := Poisson(base, 5), Poisson(foreign{base}, 5)
	for n := range uint64(100) {
		if d := absDur(got.At(n) - want.At(n)); d > time.Microsecond {
			t.Fatalf("At(%d) = %s by interpolation, %s exactly", n, got.At(n), want.At(n))
		}
	}
	if _, stop := got.Pace(time.Hour, 1000); stop {
		t.Error("a schedule without Duration stopped by itself; the stage timer should end it")
	}
}

// TestPaceDue checks that paceDue paces as Pace does and returns At(hits),
// for this package's schedules and for a foreign one.
func TestPaceDue(t *testing.T) {
	for _, s := range []Schedule{
		Constant(10, time.Second), Constant(0, time.Second), Ramp(0, 10, time.Second),
		Poisson(Constant(20, time.Second), 3), Poisson(foreign{Constant(20, time.Second)}, 3),
		foreign{Ramp(5, 1, time.Second)},
	} {
		for hits := range uint64(40) {
			for _, elapsed := range []time.Duration{0, time.Duration(hits) * 30 * time.Millisecond, 2 * time.Second} {
				due, wait, stop := paceDue(s, elapsed, hits)
				w, st := s.Pace(elapsed, hits)
				if due != s.At(hits) || wait != w || stop != st {
					t.Fatalf("%s: paceDue(%s, %d) = (%s, %s, %t), want (%s, %s, %t)", s, elapsed, hits, due, wait, stop, s.At(hits), w, st)
				}
			}
		}
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// dueByScan counts the n with At(n) < d one by one.
func dueByScan(s Schedule, d time.Duration) uint64 {
	n := uint64(0)
	for s.At(n) < d {
		n++
	}
	return n
}

func TestDue(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		s    Schedule
		d    time.Duration
		want uint64
	}{
		{"nothing before 0", Constant(10, time.Second), 0, 0},
		{"negative", Constant(10, time.Second), -time.Second, 0},
		{"hit 0 is due at 0", Constant(10, time.Second), 1, 1},
		{"hit 1 is due at 100ms, not before", Constant(10, time.Second), 100 * ms, 1},
		{"just after hit 1", Constant(10, time.Second), 100*ms + 1, 2},
		{"the whole stage", Constant(10, time.Second), time.Second, 10},
		{"past the stage: its duration", Constant(10, time.Second), time.Second + 5*ms, 10},
		{"far past the stage", Constant(10, time.Second), time.Hour, 10},
		{"zero rate", Constant(0, time.Second), time.Second, 0},
		{"ramp 1→12 over 2m", Ramp(1, 12, 2*time.Minute), 2 * time.Minute, 780},
		{"ramp 1→12 half way", Ramp(1, 12, 2*time.Minute), time.Minute, 225},
		{"falling ramp to 0", Ramp(10, 0, time.Second), time.Hour, 5},
		{"ramp 0→0", Ramp(0, 0, time.Second), time.Second, 0},
		{"an hour at 1000/s", Constant(1000, time.Hour), time.Hour, 3_600_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Due(tt.s, tt.d); got != tt.want {
				t.Errorf("Due(%s, %s) = %d, want %d", tt.s, tt.d, got, tt.want)
			}
		})
	}
	if got := Due(nil, time.Second); got != 0 {
		t.Errorf("Due(nil) = %d", got)
	}
}

// TestDueIsWhatTheStageSends checks Due against the hits each schedule's
// pacer sends before it stops, and against a scan of At, for constant, ramp
// and Poisson schedules over many seeds.
func TestDueIsWhatTheStageSends(t *testing.T) {
	var scheds []Schedule
	for _, base := range []func() Schedule{
		func() Schedule { return Constant(20, 10*time.Second) },
		func() Schedule { return Constant(3, 7*time.Second) },
		func() Schedule { return Ramp(1, 30, 20*time.Second) },
		func() Schedule { return Ramp(30, 0, 20*time.Second) },
	} {
		scheds = append(scheds, base())
		for seed := range uint64(40) {
			scheds = append(scheds, Poisson(base(), seed))
		}
	}
	for _, s := range scheds {
		du := s.(durationer).Duration()
		sent := hitsUntilStop(t, s, 1e7)
		if got := Due(s, du); got != sent {
			t.Errorf("%s: Due = %d, the pacer sends %d", s, got, sent)
		}
		for _, d := range []time.Duration{du / 3, du / 2, du - 1, du} {
			if got, want := Due(s, d), dueByScan(s, d); got != want {
				t.Errorf("%s: Due(%s) = %d, a scan of At says %d", s, d, got, want)
			}
		}
	}
}

// TestDuePoissonFresh checks that a Poisson schedule a stage has used (its
// block cache and running sums filled in pacing order) gives the count a
// fresh one from the same seed gives, that Due leaves its arrivals as they
// were, and that it may run beside At.
func TestDuePoissonFresh(t *testing.T) {
	mk := func(seed uint64) Schedule { return Poisson(Ramp(50, 2000, 30*time.Second), seed) }
	for _, seed := range []uint64{1, 2, 3} {
		used := mk(seed)
		sent := hitsUntilStop(t, used, 1e7) // the stage: several blocks of arrivals
		_ = used.At(sent / 3)               // and a late lookup
		fresh := Due(mk(seed), 30*time.Second)
		if got := Due(used, 30*time.Second); got != sent || fresh != sent {
			t.Errorf("seed %d: Due %d on the used schedule, %d on a fresh one; the stage sent %d", seed, got, fresh, sent)
		}
		// The realized count, not the integral (30,750): it varies by seed.
		t.Logf("seed %d: %d due for an integral of 30750", seed, fresh)
		other := mk(seed)
		for _, n := range []uint64{0, 1, 4095, 4096, sent / 2, sent - 1, sent, sent + 5000} {
			if a, b := used.At(n), other.At(n); a != b {
				t.Errorf("seed %d: At(%d) = %s after Due, %s fresh", seed, n, a, b)
			}
		}
	}
	// Due and At at once (under -race): the same answers.
	s := mk(9)
	want := Due(mk(9), 30*time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if got := Due(s, 30*time.Second); got != want {
				t.Errorf("concurrent Due = %d, want %d", got, want)
			}
		}()
		go func() {
			defer wg.Done()
			for n := range uint64(20000) {
				_ = s.At(n)
			}
		}()
	}
	wg.Wait()
}
