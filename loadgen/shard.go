package loadgen

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
	"sync"
	"time"
)

// Shard is one of N load generators that together send one run's load:
// shard K of N, K from 0 to N−1 (a Kubernetes Indexed Job's completion
// index). The zero value, and any N ≤ 1, is the whole load.
//
// Split gives each shard exactly its share of every stage, so that the
// union of the N shards' hits is the single-process schedule:
//
//   - constant and ramp: interleaved arrivals, shard K sends the hits n with
//     n mod N = K, each at the instant the single schedule has it due;
//   - Poisson: every shard draws the same arrivals (the same seed) and keeps
//     those a hash of (seed, n) assigns to it. That is an independent
//     thinning, so each shard's arrivals are a Poisson process of rate λ/N,
//     and their union is the single-process sequence itself, not merely a
//     Poisson process of the same rate. Each shard pays for drawing all N×
//     arrivals (a few ns each);
//   - closed loop: the concurrency split, the remainder to the first shards
//     (a shard with no share sends nothing for the stage's duration).
type Shard struct{ K, N int }

// Whole reports whether sh is the whole load (no sharding).
func (sh Shard) Whole() bool { return sh.N <= 1 }

// Validate checks 0 ≤ K < N.
func (sh Shard) Validate() error {
	if sh.N < 1 || sh.K < 0 || sh.K >= sh.N {
		return fmt.Errorf("shard %d/%d: want K/N with N ≥ 1 and 0 ≤ K < N (K counts from 0, as a Kubernetes Indexed Job's completion index)", sh.K, sh.N)
	}
	return nil
}

func (sh Shard) String() string { return fmt.Sprintf("%d/%d", sh.K, sh.N) }

// Split returns stage st as shard sh sends it (st itself for the whole
// load). The stage keeps its name, duration and start.
func (sh Shard) Split(st Stage) Stage {
	if sh.Whole() {
		return st
	}
	st.global = sh.interleave
	if st.Concurrency > 0 {
		c := sh.Concurrency(st.Concurrency)
		st.Concurrency = c
		if c == 0 {
			st.Schedule = Constant(0, st.Duration) // no share: the stage passes sending nothing
		}
		return st
	}
	st.Schedule = sh.Schedule(st.Schedule)
	if t, ok := st.Schedule.(*thinned); ok {
		st.global = t.global
	}
	return st
}

// interleave is hit m's index in the whole stage when the shards take
// turns: m·N + K (a closed loop's too, which has no schedule: the ids are
// then unique, not the single process's).
func (sh Shard) interleave(m uint64) uint64 { return m*uint64(sh.N) + uint64(sh.K) }

// Concurrency is shard sh's share of a closed loop of c: c/N, plus one for
// the first c mod N shards.
func (sh Shard) Concurrency(c int) int {
	if sh.Whole() {
		return c
	}
	n := c / sh.N
	if sh.K < c%sh.N {
		n++
	}
	return n
}

// Schedule returns shard sh's part of s: interleaved hits, or a Poisson
// schedule thinned by a hash of its seed.
func (sh Shard) Schedule(s Schedule) Schedule {
	if sh.Whole() || s == nil {
		return s
	}
	if p, ok := s.(*poisson); ok {
		return &thinned{base: p, sh: sh, seed: p.seed}
	}
	return interleaved{base: s, sh: sh}
}

// --- interleaved ------------------------------------------------------------

// interleaved is hits K, K+N, K+2N… of its base: hit m is base hit m·N+K.
type interleaved struct {
	base Schedule
	sh   Shard
}

var (
	_ Schedule   = interleaved{}
	_ durationer = interleaved{}
	_ ender      = interleaved{}
)

// At returns base.At(m·N + K).
func (s interleaved) At(m uint64) time.Duration {
	n := uint64(s.sh.N)
	hi, lo := bits.Mul64(m, n)
	j, carry := bits.Add64(lo, uint64(s.sh.K), 0)
	if hi != 0 || carry != 0 {
		return never
	}
	return s.base.At(j)
}

func (s interleaved) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	return pace(s.At(hits), s.end(), elapsed)
}

func (s interleaved) end() time.Duration { return endOf(s.base) }

// Rate is the base rate's share.
func (s interleaved) Rate(elapsed time.Duration) float64 {
	return s.base.Rate(elapsed) / float64(s.sh.N)
}

func (s interleaved) Duration() time.Duration { return durationOf(s.base) }

func (s interleaved) String() string { return s.base.String() + " · shard " + s.sh.String() }

// endOf is the stage length a schedule paces to (never: the stage's timer
// ends it).
func endOf(s Schedule) time.Duration {
	if e, ok := s.(ender); ok {
		return e.end()
	}
	if d := durationOf(s); d > 0 {
		return d
	}
	return never
}

func durationOf(s Schedule) time.Duration {
	if d, ok := s.(durationer); ok {
		return d.Duration()
	}
	return 0
}

// --- thinned ----------------------------------------------------------------

// thinBlock is how many base arrivals one block of a thinned schedule
// covers: memory is one count per block plus the kept offsets of one.
const thinBlock = 4096

// thinned keeps the arrivals of a Poisson schedule that owner assigns to
// its shard.
type thinned struct {
	base *poisson
	sh   Shard
	seed uint64

	mu    sync.Mutex
	cum   []uint64 // cum[b]: kept arrivals before block b; len = blocks counted + 1
	block uint64   // the block whose kept offsets are cached
	kept  []uint32 // its kept offsets; nil when none is cached
}

var (
	_ Schedule   = (*thinned)(nil)
	_ durationer = (*thinned)(nil)
	_ ender      = (*thinned)(nil)
)

// owner is the shard arrival n of a Poisson stage with this seed goes to:
// a 64-bit mix of (seed, n), mapped onto 0..N−1 by its high bits.
func owner(seed, n uint64, shards int) int {
	z := seed + (n+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	hi, _ := bits.Mul64(z, uint64(shards))
	return int(hi)
}

// keptIn lists the offsets in block b of the arrivals this shard keeps.
func (t *thinned) keptIn(b uint64, into []uint32) []uint32 {
	into = into[:0]
	first := b * thinBlock
	for i := range uint64(thinBlock) {
		if owner(t.seed, first+i, t.sh.N) == t.sh.K {
			into = append(into, uint32(i))
		}
	}
	return into
}

// index is the base index of this shard's arrival m, or false when the
// base schedule has ended before it.
func (t *thinned) index(m uint64) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cum == nil {
		t.cum = []uint64{0}
	}
	end := t.base.end()
	for t.cum[len(t.cum)-1] <= m {
		b := uint64(len(t.cum) - 1)
		if b >= math.MaxUint64/thinBlock || t.base.At(b*thinBlock) >= end {
			return 0, false // the base is over before this shard's arrival m
		}
		t.kept = t.keptIn(b, t.kept)
		t.block = b
		t.cum = append(t.cum, t.cum[b]+uint64(len(t.kept)))
	}
	// The block holding m: the last b with cum[b] ≤ m.
	b := uint64(sort.Search(len(t.cum), func(i int) bool { return t.cum[i] > m }) - 1)
	if t.kept == nil || t.block != b {
		t.kept = t.keptIn(b, t.kept)
		t.block = b
	}
	return b*thinBlock + uint64(t.kept[m-t.cum[b]]), true
}

// global is the index of this shard's arrival m in the whole stage.
func (t *thinned) global(m uint64) uint64 {
	j, ok := t.index(m)
	if !ok {
		return t.sh.interleave(m) // past the end: never sent, any unique id will do
	}
	return j
}

// At returns the base's At of this shard's arrival m.
func (t *thinned) At(m uint64) time.Duration {
	j, ok := t.index(m)
	if !ok {
		return never
	}
	return t.base.At(j)
}

func (t *thinned) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	return pace(t.At(hits), t.end(), elapsed)
}

func (t *thinned) end() time.Duration { return t.base.end() }

// Rate is the base intensity's share.
func (t *thinned) Rate(elapsed time.Duration) float64 {
	return t.base.Rate(elapsed) / float64(t.sh.N)
}

func (t *thinned) Duration() time.Duration { return t.base.Duration() }

func (t *thinned) String() string { return t.base.String() + " · shard " + t.sh.String() }
