package timeline

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
)

// WriteCSV writes one line per timeline row: the load columns, then one
// column per series (empty when there was no value), then the row's events.
func WriteCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	head := []string{"t_s", "span_s", "stage", "target_rps", "sent", "done", "in_flight", "errors", "aborted",
		"ttft_p50_ms", "ttft_p95_ms", "output_tps", "send_lag_p50_ms", "send_lag_p99_ms", "send_lag_max_ms", "capped"}
	for _, s := range r.Series {
		head = append(head, s.Name)
	}
	head = append(head, "events")
	if err := cw.Write(head); err != nil {
		return err
	}
	events := map[int][]string{}
	for _, e := range r.Events {
		i := r.rowOf(e.T)
		events[i] = append(events[i], e.Text)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	fp := func(v *float64) string {
		if v == nil {
			return ""
		}
		return f(*v)
	}
	for i, x := range r.Timeline {
		rec := []string{f(x.T), f(x.Span), x.Stage, f(x.TargetRPS), strconv.FormatInt(x.Sent, 10), strconv.FormatInt(x.Done, 10),
			strconv.FormatInt(x.InFlight, 10), strconv.FormatInt(x.Errors, 10), strconv.FormatInt(x.Aborted, 10), fp(x.TTFTP50), fp(x.TTFTP95),
			f(x.OutputTPS), fp(x.LagP50), fp(x.LagP99), fp(x.LagMax), strconv.FormatBool(x.Capped)}
		for _, s := range r.Series {
			rec = append(rec, fp(x.Series[s.Name]))
		}
		rec = append(rec, strings.Join(events[i], "; "))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
