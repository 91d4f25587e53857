package promwatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/scaleout/scaleout/promql"
)

// querier is what Prometheus needs of a Prometheus server: one instant query.
// It returns the result, the server's warnings and an error (an *apiError
// for answers that are not results, a transport error otherwise).
type querier interface {
	Query(ctx context.Context, query string, ts time.Time) (model.Value, []string, error)
}

// Prometheus evaluates queries as instant queries against a Prometheus
// server's HTTP API (POST /api/v1/query, falling back to GET as client_golang
// does).
type Prometheus struct {
	q      querier
	source string              // "prometheus http://host:9090", credentials removed
	scrub  func(string) string // removes the token from server messages; only the RoundTripper holds it to send it
	status statusAPI           // nil: the start of the server is not checked (see ErrUnscraped)
	fresh  freshness
}

var _ Evaluator = (*Prometheus)(nil)

// NewPrometheus queries a Prometheus server's HTTP API through client_golang
// (api.NewClient and v1.NewAPI; instant queries at `at`, all queries of one Eval
// concurrently). bearerToken "" means none; it is sent to the address's host
// only. rt nil means client_golang's api.DefaultRoundTripper.
func NewPrometheus(address, bearerToken string, rt http.RoundTripper) (*Prometheus, error) {
	u, err := parseHTTPURL(address)
	if err != nil {
		return nil, fmt.Errorf("prometheus address: %w", err)
	}
	if rt == nil {
		rt = api.DefaultRoundTripper
	}
	if bearerToken != "" {
		rt = &bearerTransport{next: rt, token: secret(bearerToken), hosts: map[string]bool{u.Host: true}}
	}
	c, err := api.NewClient(api.Config{Address: address, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %s: %w", redactedURL(u), err)
	}
	client := statusErrors{c}
	a := v1.NewAPI(client)
	p := newPrometheus(&apiQuerier{api: a}, "prometheus "+strings.TrimRight(redactedURL(u), "/"), secret(bearerToken))
	p.status = statusClient{API: a, c: client}
	return p, nil
}

// newPrometheus keeps the token only inside a scrubbing closure, so even
// %#v of a Prometheus cannot print it.
func newPrometheus(q querier, source string, token secret) *Prometheus {
	return &Prometheus{q: q, source: source, scrub: token.scrub}
}

func (p *Prometheus) String() string { return p.source }

// Redact also removes from every message the server sends what f removes
// (the token always is): the run's other secrets. Call it before the
// first Eval.
func (p *Prometheus) Redact(f func(string) string) {
	token := p.scrub
	p.scrub = func(s string) string { return f(token(s)) }
}

// Points are one series' raw samples, oldest first.
type Points struct {
	Labels map[string]string
	At     []time.Time
	V      []float64
}

// Samples returns the raw samples the series that selector matches stored
// in the last window up to the server's now, those after `after` only
// (the server's clock) — the samples of series that went away included —
// through one instant query of selector[window].
func (p *Prometheus) Samples(ctx context.Context, selector string, window time.Duration, after time.Time) ([]Points, error) {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	val, _, err := p.q.Query(ctx, fmt.Sprintf("%s[%dms]", selector, max(window.Milliseconds(), 1)), time.Time{})
	if err != nil {
		return nil, &SourceError{Source: p.source, Reason: p.scrub(apiReason(err)), Err: err}
	}
	m, ok := val.(model.Matrix)
	if !ok {
		return nil, &SourceError{Source: p.source, Reason: fmt.Sprintf("a range query answered %s, not a matrix", val.Type())}
	}
	out := make([]Points, 0, len(m))
	for _, s := range m {
		if s == nil || len(s.Histograms) > 0 {
			continue
		}
		ps := Points{Labels: make(map[string]string, len(s.Metric)), At: make([]time.Time, 0, len(s.Values)), V: make([]float64, 0, len(s.Values))}
		for k, v := range s.Metric {
			ps.Labels[string(k)] = string(v)
		}
		for _, v := range s.Values {
			if t := v.Timestamp.Time(); t.After(after) {
				ps.At, ps.V = append(ps.At, t), append(ps.V, float64(v.Value))
			}
		}
		out = append(out, ps)
	}
	return out, nil
}

// Eval sends every query as an instant query at `at`, all concurrently, and
// waits for all of them. A zero `at` means the server's now. A ctx without a
// deadline is bounded by DefaultTimeout. Beside the queries it asks whether
// the server has scraped since it started; until it has, every answer
// becomes an ErrUnscraped gap (its Vector kept). Before them it asks for
// the jobs' newest scrapes at `at`: when one is older than its scrape
// interval allows, every answer becomes an ErrStale gap.
func (p *Prometheus) Eval(ctx context.Context, at time.Time, queries []string) []Result {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	began := time.Now()
	// First, so that every scrape it saw was stored before the queries ran.
	var hb beat
	if p.status != nil {
		hb = p.fresh.heartbeat(ctx, p.q, at)
	}
	results := make([]Result, len(queries))
	var wg sync.WaitGroup
	for i, q := range queries {
		wg.Go(func() { results[i] = p.query(ctx, at, q) })
	}
	var why string
	var refused bool
	if p.status != nil {
		now := at
		if now.IsZero() {
			now = time.Now()
		}
		wg.Go(func() { why, refused = p.fresh.unscraped(ctx, p.status, now, began) })
	}
	wg.Wait()
	answered := false
	for _, r := range results {
		answered = answered || r.Err == nil
	}
	if refused && answered {
		p.fresh.disable() // the queries work and the status API does not: it is not offered
	}
	cause := ErrUnscraped
	if why == "" && hb != nil && answered {
		why, cause = p.fresh.lagging(ctx, p.status, hb, at), ErrStale
	}
	if why != "" {
		for i, r := range results {
			if r.Err == nil {
				results[i].Err = &SourceError{Source: p.source, Reason: why, Err: cause}
			}
		}
	}
	return results
}

// ScrapeInterval is the longest scrape interval of the server's active
// targets as last read (0 when not known): how long a caller may have to
// wait for answers held back as ErrUnscraped or ErrStale.
func (p *Prometheus) ScrapeInterval() time.Duration { return p.fresh.scrapeInterval() }

func (p *Prometheus) query(ctx context.Context, at time.Time, q string) Result {
	if strings.TrimSpace(q) == "" {
		return Result{Err: &promql.Error{Query: q, Col: 1, Msg: "empty query"}}
	}
	val, warnings, err := p.q.Query(ctx, q, at)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) { // our deadline, whatever the transport said
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return Result{Err: &SourceError{Source: p.source, Reason: p.scrub(apiReason(err)), Err: err}}
	}
	var notes []string
	for _, w := range warnings {
		notes = append(notes, p.scrub(w))
	}
	vec, err := toVector(val)
	return Result{Vector: vec, Err: err, Warnings: notes}
}

// toVector maps an instant query's answer: a vector to its elements, a
// scalar to one element; anything else is an error that says what to change.
func toVector(val model.Value) ([]Element, error) {
	switch v := val.(type) {
	case model.Vector:
		out := make([]Element, 0, len(v))
		for _, s := range v {
			if s == nil {
				continue
			}
			if s.Histogram != nil {
				return nil, errors.New("native histogram result: wrap it in histogram_sum(…), histogram_count(…) or histogram_quantile(…)")
			}
			labels := make(map[string]string, len(s.Metric))
			for k, lv := range s.Metric {
				labels[string(k)] = string(lv)
			}
			out = append(out, Element{Labels: labels, V: float64(s.Value)})
		}
		return out, nil
	case *model.Scalar:
		return []Element{{Labels: map[string]string{}, V: float64(v.Value)}}, nil
	case model.Matrix:
		return nil, errors.New("range vector result: drop the [range] or wrap it in rate(…) or avg_over_time(…)")
	case *model.String:
		return nil, errors.New("string result: the query must return a number")
	default:
		return nil, errors.New("empty answer from Prometheus")
	}
}

// apiError is an answer of the HTTP API that is not a result: a non-2xx
// status, an error envelope, or a body that is not the API's JSON.
type apiError struct {
	Status int    // HTTP status
	Type   string // the API's errorType ("bad_data", "execution", "timeout", …); "" without a JSON envelope
	Msg    string // the API's error message
}

func (e *apiError) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d: %s: %s", e.Status, e.Type, e.Msg)
}

// apiReason is the gap reason for what a querier returned.
func apiReason(err error) string {
	var ae *apiError
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || !errors.As(err, &ae) {
		return ShortError(err)
	}
	msg := strings.TrimPrefix(ae.Msg, `invalid parameter "query": `)
	switch ae.Type {
	case "bad_data":
		return clip("bad query: " + msg)
	case "execution":
		return clip("query failed: " + msg)
	case "timeout":
		return "timeout (in Prometheus)"
	case "canceled":
		return "canceled (in Prometheus)"
	case "bad_response":
		return clip("bad response: " + msg)
	}
	return httpReason(ae.Status)
}

// statusErrors is client_golang's HTTP client with one change: an answer
// whose status is not 2xx is an *apiError that keeps the status (and the
// API's error type and message when the body is its error envelope), where
// client_golang's *v1.Error would keep the status only in its message.
// api/prometheus/v1 passes the client's errors through as they are; a 403,
// 405 or 501 still makes it retry a POST as a GET.
type statusErrors struct{ api.Client }

func (c statusErrors) Do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	resp, body, err := c.Client.Do(ctx, req)
	if err != nil || resp.StatusCode/100 == 2 {
		return resp, body, err
	}
	e := &apiError{Status: resp.StatusCode}
	var env struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Status == "error" {
		e.Type, e.Msg = env.ErrorType, env.Error
	}
	return resp, body, e
}

// apiQuerier queries through client_golang's api/prometheus/v1 (a POSTed
// form, and a GET when the server refuses POST) and turns its *v1.Error into
// an *apiError the gap reasons can read.
type apiQuerier struct {
	api v1.API
}

func (a *apiQuerier) Query(ctx context.Context, query string, ts time.Time) (model.Value, []string, error) {
	val, warnings, _, err := a.api.Query(ctx, query, ts)
	if err != nil {
		var ve *v1.Error
		if !errors.As(err, &ve) {
			return nil, warnings, err
		}
		// v1 does not decode string results, and says so only in its
		// message: say what the query returned.
		if ve.Type == v1.ErrBadResponse && strings.Contains(ve.Msg, `value type "string"`) {
			return &model.String{}, warnings, nil
		}
		return nil, warnings, fromV1(ve)
	}
	return val, warnings, nil
}

// fromV1 reads client_golang's error for a 2xx answer (statusErrors has
// turned the others into *apiError): a body that is not the API's JSON, or
// an error envelope, which keeps its type and message.
func fromV1(e *v1.Error) *apiError {
	if e.Type == v1.ErrBadResponse {
		return &apiError{Status: http.StatusOK, Type: "bad_response", Msg: "not the Prometheus API's JSON (check the address)"}
	}
	return &apiError{Status: http.StatusOK, Type: string(e.Type), Msg: e.Msg}
}

// formatTime writes an instant as the API's decimal Unix seconds.
func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.Unix())+float64(t.Nanosecond())/1e9, 'f', -1, 64)
}

// bearerTransport adds "Authorization: Bearer <token>" to requests for the
// hosts it was given (a redirect elsewhere does not get the token).
type bearerTransport struct {
	next  http.RoundTripper
	token secret
	hosts map[string]bool // host:port as in the URLs
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.hosts[req.URL.Host] || req.Header.Get("Authorization") != "" {
		return t.next.RoundTrip(req)
	}
	r := req.Clone(req.Context()) // a RoundTripper must not modify its request
	r.Header.Set("Authorization", "Bearer "+string(t.token))
	return t.next.RoundTrip(r)
}

// parseHTTPURL accepts an absolute http(s) URL with a host.
func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the raw string, which may hold a password
		}
		return nil, fmt.Errorf("not a URL (%v)", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("%q is not an http(s)://host:port address", redactedURL(u))
	}
	return u, nil
}
