package timeline

import (
	"runtime"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
)

// BenchmarkAddRequest feeds the timeline requests at 10,000 a second of
// run time, each with 64 inter-token gaps, the way a long run does. Memory
// stays bounded whatever the count: percentiles live in fixed-size
// histograms and rows older than the late window are closed and their
// histograms reused. The heap after the run is reported as heap-MB; run it
// with -benchtime 1000000x to see a million requests take no more than a
// hundred thousand (go test -run '^$' -bench AddRequest -benchmem ./timeline/).
func BenchmarkAddRequest(b *testing.B) {
	tl := New(Config{Interval: time.Second, Series: series(platform.Waiting, platform.Desired),
		Stages: []StagePlan{{Name: "s", Duration: time.Hour, RateFrom: 10000, RateTo: 10000}}})
	tl.StageStarted(0, 0)
	itl := make([]time.Duration, 63)
	for i := range itl {
		itl[i] = time.Duration(9+i%3) * time.Millisecond
	}
	r := measure.Request{TTFT: 80 * time.Millisecond, E2E: 900 * time.Millisecond, Events: 64, ITL: itl,
		PromptTokens: 128, OutputTokens: 64, Status: 200}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		at := time.Duration(i) * 100 * time.Microsecond
		r.Seq, r.Scheduled, r.Sent = uint64(i), at, at+50*time.Microsecond
		tl.AddRequest(&r)
		if i%10000 == 0 { // one sample a second of run time
			tl.AddSample(measure.Sample{At: at, Values: []measure.Value{{V: 3}, {V: 2}}})
		}
		i++
	}
	b.StopTimer()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MB")
	b.ReportMetric(float64(len(tl.rows)), "rows")
}
