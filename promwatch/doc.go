// Package promwatch is the observation side of a run: it evaluates named
// PromQL series at one instant, on every tick, and turns each answer into a
// measure.Value — a number, or a gap with a short human reason. A missing
// sample is never a 0.
//
// Two Evaluators answer the queries:
//
//   - Prometheus sends instant queries to a Prometheus server's HTTP API
//     through client_golang's api/prometheus/v1 (POST /api/v1/query, GET
//     when POST is refused), all queries of one instant concurrently.
//   - Scrape reads the /metrics pages directly (expfmt text format), once per
//     page per evaluation, and evaluates a PromQL subset over them.
//
// # The scrape-mode subset
//
// Scrape evaluates the PromQL subset package promql parses: one selector,
// optionally inside sum, avg, min, max or count with by or without; see
// promql for the grammar. Anything else gets the *promql.Error of
// ValidateScrapeQuery, with the line and column at which it starts.
//
// Histograms answer name_bucket{le="…"}, name_sum and name_count; summaries
// answer name{quantile="…"}, name_sum and name_count. An "=" or "!=" matcher
// on le or quantile compares numerically, so le="1" and le="1.0" both find
// the bucket whose upper bound is 1 (le values themselves print as Go's
// shortest float form: "0.3", "1", "+Inf").
//
// Every series gets the label instance="host:port" of its page, as
// Prometheus would add it (a label instance already on the page moves to
// exported_instance). No job, namespace or pod label is added: those come
// from a Prometheus scrape configuration, so a query that matches on them
// finds nothing in scrape mode (the Result carries a warning that says so).
//
// The instant argument of Eval is ignored in scrape mode: pages are read
// when Eval runs.
//
// # Gaps
//
// ToValue never turns a failure into a 0. The reasons are short: "no series",
// "2 series (aggregate with sum(…) or max(…))", "connection refused",
// "timeout", "HTTP 503", "HTTP 401 (check the token)", "bad query: …",
// "NaN"; in scrape mode a page failure starts with the page's instance
// ("10.0.0.5:8000: connection refused"). A Prometheus whose answers may
// predate its start (ErrUnscraped) or whose newest samples are older than
// its scrape intervals allow (ErrStale, "stale: …") leaves gaps too. The bearer token never appears in
// an error, a gap or String().
//
// # Time and goroutines
//
// The Watcher reads one clock (Watcher.Now) once per sample; that instant is
// both the evaluation time sent to Prometheus and, minus Watcher.Epoch, the
// sample's offset. Run owns its loop goroutine; Eval implementations start
// one goroutine per query (Prometheus) or per page (Scrape) and join them
// before returning.
package promwatch
