package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Schedule is a vegeta.Pacer that also knows when each hit is due.
//
// Every implementation in this package is a pure function of (elapsed, hits):
// hit n is due at At(n), Pace returns the wait until that instant (0 when it is
// already due: the pacer catches up, it never skips a hit) and stop=true once
// the next hit would be due at or after the stage duration, so vegeta never
// sleeps past the end to send one more.
type Schedule interface {
	vegeta.Pacer
	At(n uint64) time.Duration // offset from the stage start at which hit n (0-based) is due
	String() string            // e.g. "10/s for 30s", "ramp 1/s→12/s over 2m", "poisson(ramp 1/s→12/s over 2m)"
}

// never is the offset returned for a hit that is never due.
const never = time.Duration(math.MaxInt64)

// Due is the number of hits of s due before d: the count of n with
// At(n) < d, which is what the stage sends when every hit goes out on time
// and it runs for d. A d past the schedule's own duration (Constant, Ramp
// and a Poisson over them know it) counts up to that duration only: hits due
// at or after it are never sent, so the time a stage ran, a little longer
// than its duration, may be passed as it is.
//
// It is exact, not the intensity's integral: for a Poisson schedule it is
// this seed's realized count, which varies around the integral by about its
// square root. It binary-searches the non-decreasing At (true of every
// schedule in this package; one from elsewhere must be non-decreasing too),
// calling it O(log count) times. A Poisson schedule's At keeps a cache and a
// running sum, but every value depends only on the seed: a fresh
// Poisson(base, seed) gives the same count, and calling Due on one that a
// stage has used is safe (At is safe for concurrent use, though Due pages
// through its blocks: best called once nothing else paces with it). The
// work is that of drawing up to twice the count's arrivals once.
func Due(s Schedule, d time.Duration) uint64 {
	if s == nil {
		return 0
	}
	if dr, ok := s.(durationer); ok {
		if du := dr.Duration(); du > 0 && d > du {
			d = du
		}
	}
	if d <= 0 || s.At(0) >= d {
		return 0
	}
	// At(lo) < d ≤ At(hi): double hi until it is past d, then bisect.
	lo, hi := uint64(0), uint64(1)
	for s.At(hi) < d {
		lo = hi
		if hi >= 1<<63 {
			return hi // more hits than a uint64 can count in practice
		}
		hi *= 2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if s.At(mid) < d {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// inverter is implemented by schedules whose cumulative intensity
// Λ(t) = ∫₀ᵗ λ can be inverted for any real x ≥ 0: inverse(x) = Λ⁻¹(x).
// Poisson uses it to place arrivals at non-integer points of Λ.
type inverter interface {
	inverse(x float64) time.Duration
}

// durationer is implemented by schedules that know their stage length.
type durationer interface {
	Duration() time.Duration
}

// secondsToDuration converts seconds to a Duration, rounding to the
// nanosecond; NaN, +Inf and values beyond the range map to never.
func secondsToDuration(s float64) time.Duration {
	ns := s * 1e9
	if math.IsNaN(ns) || ns >= math.MaxInt64 {
		return never
	}
	if ns <= 0 {
		return 0
	}
	return time.Duration(math.Round(ns))
}

// ender is implemented by this package's schedules: end is the du their
// Pace passes to pace.
type ender interface {
	end() time.Duration
}

// paceDue is s.Pace(elapsed, hits) that also returns s.At(hits), the due
// time it paces to, computing it once for this package's schedules.
func paceDue(s Schedule, elapsed time.Duration, hits uint64) (due, wait time.Duration, stop bool) {
	due = s.At(hits)
	if e, ok := s.(ender); ok {
		wait, stop = pace(due, e.end(), elapsed)
	} else {
		wait, stop = s.Pace(elapsed, hits)
	}
	return due, wait, stop
}

// pace is the common Pacer logic of every schedule: due is when hit `hits`
// is due, du the stage length.
func pace(due, du, elapsed time.Duration) (time.Duration, bool) {
	if due >= du {
		return 0, true
	}
	if due <= elapsed {
		return 0, false
	}
	return due - elapsed, false
}

// --- constant ---------------------------------------------------------------

type constant struct {
	perSecond float64
	du        time.Duration
}

var (
	_ vegeta.Pacer = constant{}
	_ Schedule     = constant{}
	_ inverter     = constant{}
	_ durationer   = constant{}
	_ ender        = constant{}
)

// Constant sends perSecond hits a second, evenly spaced, for du: hit n is due
// at n/perSecond. A rate ≤ 0 sends nothing.
func Constant(perSecond float64, du time.Duration) Schedule {
	return constant{perSecond: max(perSecond, 0), du: du}
}

func (c constant) inverse(x float64) time.Duration {
	if c.perSecond <= 0 {
		return never // a zero rate sends nothing, not even hit 0
	}
	if x <= 0 {
		return 0
	}
	return secondsToDuration(x / c.perSecond)
}

// At returns n/rate.
func (c constant) At(n uint64) time.Duration { return c.inverse(float64(n)) }

// Pace implements vegeta.Pacer.
func (c constant) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	return pace(c.At(hits), c.end(), elapsed)
}

func (c constant) end() time.Duration { return c.du }

// Rate is the rate inside the stage, 0 outside it.
func (c constant) Rate(elapsed time.Duration) float64 {
	if elapsed < 0 || elapsed >= c.du {
		return 0
	}
	return c.perSecond
}

// Duration is the stage length.
func (c constant) Duration() time.Duration { return c.du }

func (c constant) String() string {
	return fmtRate(c.perSecond) + " for " + fmtDuration(c.du)
}

// --- ramp -------------------------------------------------------------------

type ramp struct {
	from, to float64
	du       time.Duration
}

var (
	_ vegeta.Pacer = ramp{}
	_ Schedule     = ramp{}
	_ inverter     = ramp{}
	_ durationer   = ramp{}
	_ ender        = ramp{}
)

// Ramp changes the rate linearly from `from` to `to` hits a second over du.
// Hit n is due at Λ⁻¹(n) with Λ(t) = from·t + (to−from)·t²/(2·du), so hit 0
// goes at t=0 and the stage sends about (from+to)/2·du hits. Negative rates
// are taken as 0.
func Ramp(from, to float64, du time.Duration) Schedule {
	return ramp{from: max(from, 0), to: max(to, 0), du: du}
}

// inverse solves from·t + a·t² = x for the smallest t ≥ 0 with
// a = (to−from)/(2·du), in the cancellation-free form 2x / (b + √(b²+4ax)).
func (r ramp) inverse(x float64) time.Duration {
	secs := r.du.Seconds()
	if secs <= 0 || r.from <= 0 && r.to <= 0 {
		return never // no time or no rate: nothing is ever due
	}
	if x <= 0 {
		return 0
	}
	a := (r.to - r.from) / (2 * secs)
	b := r.from
	disc := b*b + 4*a*x
	if disc < 0 { // a falling ramp that never accumulates x hits
		return never
	}
	den := b + math.Sqrt(disc)
	if den <= 0 {
		return never
	}
	return secondsToDuration(2 * x / den)
}

// At returns Λ⁻¹(n).
func (r ramp) At(n uint64) time.Duration { return r.inverse(float64(n)) }

// Pace implements vegeta.Pacer.
func (r ramp) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	return pace(r.At(hits), r.end(), elapsed)
}

func (r ramp) end() time.Duration { return r.du }

// Rate is the instantaneous rate λ(elapsed), 0 outside the stage.
func (r ramp) Rate(elapsed time.Duration) float64 {
	if elapsed < 0 || elapsed >= r.du {
		return 0
	}
	return r.from + (r.to-r.from)*float64(elapsed)/float64(r.du)
}

// Duration is the stage length.
func (r ramp) Duration() time.Duration { return r.du }

func (r ramp) String() string {
	return "ramp " + fmtRate(r.from) + "→" + fmtRate(r.to) + " over " + fmtDuration(r.du)
}

// --- poisson ----------------------------------------------------------------

// poissonBlock is how many arrivals are drawn from one seeded stream. Blocks
// are independent streams (PCG seeded with (seed, block)), so any block can be
// regenerated from the running sum at its start: memory stays at one float per
// block plus two cached blocks however long the stage runs.
const poissonBlock = 4096

type poisson struct {
	base Schedule
	inv  func(x float64) time.Duration
	du   time.Duration // 0: the base does not say; the stage timer ends it
	seed uint64

	mu    sync.Mutex
	start []float64 // start[b] = S before block b (sum of every earlier draw)
	cache [2]poissonCache
	next  int // cache slot to evict next
}

type poissonCache struct {
	block uint64
	sums  []float64 // running sums S within the block, nil when empty
}

var (
	_ vegeta.Pacer = (*poisson)(nil)
	_ Schedule     = (*poisson)(nil)
	_ durationer   = (*poisson)(nil)
	_ ender        = (*poisson)(nil)
)

// Poisson turns s into Poisson arrivals with the same intensity λ(t): hit n is
// due at Λ⁻¹(Sₙ), Sₙ the sum of n+1 Exp(1) draws from a stream seeded by seed.
// The same seed gives the same arrivals. At is safe for concurrent use.
// Schedules from other packages are inverted by interpolating between their
// integer hits, and without a Duration() method they never stop by themselves
// (the stage's own timer ends them).
func Poisson(s Schedule, seed uint64) Schedule {
	p := &poisson{base: s, seed: seed, start: []float64{0}}
	if iv, ok := s.(inverter); ok {
		p.inv = iv.inverse
	} else {
		p.inv = func(x float64) time.Duration {
			lo := math.Floor(x)
			a, b := s.At(uint64(lo)), s.At(uint64(lo)+1)
			if a == never || b == never {
				return never
			}
			return a + time.Duration(float64(b-a)*(x-lo))
		}
	}
	if d, ok := s.(durationer); ok {
		p.du = d.Duration()
	}
	return p
}

// sum returns Sₙ.
func (p *poisson) sum(n uint64) float64 {
	b, k := n/poissonBlock, n%poissonBlock
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.cache {
		if c := &p.cache[i]; c.sums != nil && c.block == b {
			return c.sums[k]
		}
	}
	for uint64(len(p.start)) <= b { // blocks before b are drawn once, in order
		last := uint64(len(p.start) - 1)
		sums := p.fill(last)
		p.start = append(p.start, sums[poissonBlock-1])
	}
	return p.fill(b)[k]
}

// fill draws block b into a cache slot and returns its sums. Called with mu held.
func (p *poisson) fill(b uint64) []float64 {
	c := &p.cache[p.next]
	p.next = (p.next + 1) % len(p.cache)
	if c.sums == nil {
		c.sums = make([]float64, poissonBlock)
	}
	c.block = b
	r := rand.New(rand.NewPCG(p.seed, b))
	s := p.start[b]
	for i := range c.sums {
		s += r.ExpFloat64()
		c.sums[i] = s
	}
	return c.sums
}

// At returns Λ⁻¹(Sₙ).
func (p *poisson) At(n uint64) time.Duration { return p.inv(p.sum(n)) }

// Pace implements vegeta.Pacer.
func (p *poisson) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	return pace(p.At(hits), p.end(), elapsed)
}

// end is never when the base has no duration: the stage's timer ends it.
func (p *poisson) end() time.Duration {
	if p.du <= 0 {
		return never
	}
	return p.du
}

// Rate is the intensity of the base schedule.
func (p *poisson) Rate(elapsed time.Duration) float64 { return p.base.Rate(elapsed) }

// Duration is the stage length of the base schedule (0 when it has none).
func (p *poisson) Duration() time.Duration { return p.du }

func (p *poisson) String() string { return "poisson(" + p.base.String() + ")" }

// --- closed loop ------------------------------------------------------------

// closedLoop is vegeta's Rate{}-style infinite pacing: every hit is due at
// once, so with Workers(N) and MaxWorkers(N) exactly N requests are in flight.
// It stops at the stage duration.
type closedLoop struct {
	du time.Duration
}

var _ vegeta.Pacer = closedLoop{}

// Pace never waits and stops once du has elapsed.
func (c closedLoop) Pace(elapsed time.Duration, _ uint64) (time.Duration, bool) {
	return 0, elapsed >= c.du
}

// Rate is 0: a closed loop has no target rate, the server's speed sets it.
func (c closedLoop) Rate(time.Duration) float64 { return 0 }

// --- formatting -------------------------------------------------------------

// fmtRate prints a per-second rate: "10/s", "0.5/s".
func fmtRate(r float64) string {
	return strconv.FormatFloat(r, 'g', -1, 64) + "/s"
}

// fmtDuration prints a duration the way a scenario spells it: "30s", "2m",
// "1m30s", "1h", "250ms".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// String prints the stage: "warmup: 10/s for 30s", "soak: 8 concurrent for 1m".
func (s Stage) String() string {
	var desc string
	switch {
	case s.Concurrency > 0:
		desc = fmt.Sprintf("%d concurrent for %s", s.Concurrency, fmtDuration(s.Duration))
	case s.Schedule != nil:
		desc = s.Schedule.String()
	default:
		desc = "no load for " + fmtDuration(s.Duration)
	}
	if s.Name == "" {
		return desc
	}
	return s.Name + ": " + desc
}
