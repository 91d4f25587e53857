package promwatch_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/promwatch"
)

// Wiring a watcher: check the queries, take one preflight sample, then
// sample every 5 s on a goroutine of its own until the run ends.
func Example() {
	series := []measure.Series{
		{Name: "waiting", Query: "sum(vllm:num_requests_waiting)"},
		{Name: "running", Query: "sum(vllm:num_requests_running)"},
	}
	for _, s := range series {
		if err := promwatch.ValidateScrapeQuery(s.Query); err != nil {
			fmt.Fprintf(os.Stderr, "series %s: %v\n", s.Name, err)
			return
		}
	}
	eval, err := promwatch.NewScrape([]string{"http://127.0.0.1:8000/metrics"}, os.Getenv("GATEWAY_TOKEN"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	w := &promwatch.Watcher{Eval: eval, Series: series, Epoch: time.Now(), Timeout: 3 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // the run's lifetime
	defer cancel()
	for i, v := range w.Sample(ctx).Values { // preflight: every query must return a sample
		if !v.OK() {
			fmt.Fprintf(os.Stderr, "%s on %s: %s\n", series[i].Name, eval, v.Gap)
		}
	}
	ticker := time.NewTicker(5 * time.Second)
	defer ticker.Stop()
	samples := make(chan measure.Sample, 64)
	go func() {
		defer close(samples)
		w.Run(ctx, ticker.C, func(s measure.Sample) { samples <- s })
	}()
	for s := range samples {
		_ = s // hand to the timeline
	}
}
