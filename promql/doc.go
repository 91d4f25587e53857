// Package promql reads PromQL for scaleout: one parser for the subset
// scaleout evaluates itself (scrape mode) and reads triggers with, and a
// token-level reader of the metric names any PromQL expression selects.
//
// # The subset
//
//	query    = [ agg [grouping] "(" selector ")" [grouping] ] | selector
//	agg      = sum | avg | min | max | count                 (case-insensitive)
//	grouping = ( by | without ) "(" [ label { "," label } [","] ] ")"
//	selector = metric_name [ "{" [ matcher { "," matcher } [","] ] "}" ]
//	         | "{" matcher { "," matcher } [","] "}"
//	matcher  = label ( "=" | "!=" | "=~" | "!~" ) string
//
// Metric names may contain colons (vllm:num_requests_waiting); a quoted name
// may also stand alone inside the braces ({"my.metric"}), and label names may
// be quoted. Strings take "…", '…' or `…` with Go escapes. Regular
// expressions are RE2 and anchored at both ends, as in PromQL. A selector
// without a metric name needs one matcher that does not match "". An "=" or
// "!=" matcher on le or quantile compares numerically, so le="1" and
// le="1.0" both match a bucket whose bound prints as "1".
//
// Whitespace, newlines and # comments may go anywhere between tokens.
// Anything else — functions (rate, histogram_quantile), binary operators,
// range selectors, offset and @ modifiers, number literals, other or nested
// aggregations — is rejected by Parse with an *Error that gives the line and
// column at which it starts.
//
// # Names outside the subset
//
// Refs reads any PromQL expression token by token and lists the metric names
// its selectors use, with their places, so a query Parse rejects (rate(…),
// a binary operator) can still be checked for a renamed metric or rewritten
// to another name. For a query Parse accepts, Refs finds exactly its Name.
package promql
