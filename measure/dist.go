package measure

import (
	"fmt"
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Dist is a latency distribution in fixed memory: an HDR histogram of
// microseconds from 1 µs to 1 hour. Values above an hour are clamped. The
// zero value is not usable; call NewDist.
type Dist struct {
	h *hdrhistogram.Histogram
}

const distMax = int64(time.Hour / time.Microsecond)

// NewDist returns an empty distribution with the given significant digits
// (3 for run and stage summaries, 2 where many are kept, such as per row).
func NewDist(digits int) *Dist {
	return &Dist{h: hdrhistogram.New(1, distMax, digits)}
}

// Add records one duration.
func (d *Dist) Add(v time.Duration) { d.AddN(v, 1) }

// AddN records one duration n times.
func (d *Dist) AddN(v time.Duration, n int64) {
	us := int64(v / time.Microsecond)
	if us < 1 {
		us = 1
	}
	if us > distMax {
		us = distMax
	}
	_ = d.h.RecordValues(us, n) // cannot fail: us is clamped into range
}

// Merge adds every value recorded in o (the union of two distributions:
// a run's from its stages').
func (d *Dist) Merge(o *Dist) { _ = d.h.Merge(o.h) } // both cover 1µs..distMax: nothing is dropped

// Count is the number of values recorded.
func (d *Dist) Count() int64 { return d.h.TotalCount() }

// Quantile returns the value at q (0..1), or 0 when empty.
func (d *Dist) Quantile(q float64) time.Duration {
	if d.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(d.h.ValueAtQuantile(q*100)) * time.Microsecond
}

// Max is the largest value recorded (0 when empty).
func (d *Dist) Max() time.Duration {
	if d.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(d.h.Max()) * time.Microsecond
}

// Mean is the mean value (0 when empty).
func (d *Dist) Mean() time.Duration {
	if d.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(d.h.Mean()) * time.Microsecond
}

// Summary is the percentile set every report shows, in milliseconds.
// Fields are nil when the distribution is empty.
type Summary struct {
	P50  *float64 `json:"p50"`
	P90  *float64 `json:"p90"`
	P95  *float64 `json:"p95"`
	P99  *float64 `json:"p99"`
	Max  *float64 `json:"max"`
	Mean *float64 `json:"mean"`
	N    int64    `json:"n"`
}

// Summary returns p50/p90/p95/p99/max/mean in milliseconds.
func (d *Dist) Summary() Summary {
	s := Summary{N: d.Count()}
	if s.N == 0 {
		return s
	}
	ms := func(v time.Duration) *float64 {
		f := math.Round(float64(v)/float64(time.Microsecond)) / 1000
		return &f
	}
	s.P50, s.P90, s.P95, s.P99 = ms(d.Quantile(.50)), ms(d.Quantile(.90)), ms(d.Quantile(.95)), ms(d.Quantile(.99))
	s.Max, s.Mean = ms(d.Max()), ms(d.Mean())
	return s
}

// Reset empties the distribution so its memory can be used again.
func (d *Dist) Reset() { d.h.Reset() }

// Encode is the distribution in HdrHistogram's V2 compressed encoding,
// base64 (the form HdrHistogram's tools in every language read), of
// microseconds: what histograms.json holds, so that runs are merged from
// their distributions and never from their percentiles.
func (d *Dist) Encode() (string, error) {
	b, err := d.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	return string(b), err
}

// DecodeDist reads a distribution Encode wrote. One of another range or
// precision is taken as it is (Merge then keeps every value within
// 1 µs..1 h); "" is an empty distribution of 3 digits.
func DecodeDist(s string) (*Dist, error) {
	if s == "" {
		return NewDist(3), nil
	}
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("not an HdrHistogram V2 encoding: %w", err)
	}
	return &Dist{h: h}, nil
}

// Sparse is a compact copy of a distribution: its non-empty buckets only,
// a few bytes per distinct value recorded. Taking one is cheap (no
// compression), so a distribution can be kept long after its memory is
// used again, and encoded once at the end.
type Sparse struct {
	low, high int64
	digits    int64
	idx       []int32
	counts    []int64
}

// Sparse copies the distribution's non-empty buckets.
func (d *Dist) Sparse() Sparse {
	s := d.h.Export()
	sp := Sparse{low: s.LowestTrackableValue, high: s.HighestTrackableValue, digits: s.SignificantFigures}
	for i, c := range s.Counts {
		if c != 0 {
			sp.idx = append(sp.idx, int32(i))
			sp.counts = append(sp.counts, c)
		}
	}
	return sp
}

// Empty reports whether nothing was recorded (a zero Sparse is empty).
func (s Sparse) Empty() bool { return len(s.idx) == 0 }

// Dist rebuilds the distribution.
func (s Sparse) Dist() *Dist {
	if s.Empty() {
		return NewDist(3)
	}
	counts := make([]int64, s.idx[len(s.idx)-1]+1)
	for i, at := range s.idx {
		counts[at] = s.counts[i]
	}
	return &Dist{h: hdrhistogram.Import(&hdrhistogram.Snapshot{
		LowestTrackableValue: s.low, HighestTrackableValue: s.high, SignificantFigures: s.digits, Counts: counts})}
}
