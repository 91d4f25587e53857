package promwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/scaleout/scaleout/promql"
)

// Scrape reads /metrics pages directly and evaluates the PromQL subset of
// package promql over them.
type Scrape struct {
	targets []target
	client  *http.Client
	redact  func(string) string // nil: failure reasons kept as they are
}

var _ Evaluator = (*Scrape)(nil)

type target struct {
	url      string // as given; used for the request only
	source   string // "scrape " + the URL without credentials or query
	instance string // host:port, the label Prometheus would add
}

// acceptText asks for the text exposition format (what expfmt's TextParser
// reads) and takes anything else as a last resort.
const acceptText = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

// maxPageBytes caps one page; a larger one is an error, not a truncation.
const maxPageBytes = 64 << 20

// NewScrape reads /metrics pages directly (expfmt) and evaluates a PromQL
// subset over them. bearerToken "" means none; it is sent to the pages'
// hosts only. rt nil means http.DefaultTransport. Two pages on one host:port
// share an instance label, as they would in Prometheus.
func NewScrape(urls []string, bearerToken string, rt http.RoundTripper) (*Scrape, error) {
	if len(urls) == 0 {
		return nil, errors.New("scrape: no /metrics URL given")
	}
	s := &Scrape{}
	seen := map[string]bool{}
	hosts := map[string]bool{}
	for _, raw := range urls {
		u, err := parseHTTPURL(raw)
		if err != nil {
			return nil, fmt.Errorf("scrape URL: %w", err)
		}
		if seen[raw] {
			return nil, fmt.Errorf("scrape URL %s is given twice", redactedURL(u))
		}
		seen[raw] = true
		hosts[u.Host] = true
		s.targets = append(s.targets, target{url: raw, source: "scrape " + redactedURL(u), instance: u.Host})
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	if bearerToken != "" {
		rt = &bearerTransport{next: rt, token: secret(bearerToken), hosts: hosts}
	}
	s.client = &http.Client{Transport: rt}
	return s, nil
}

// Redact removes from every failure reason what f removes (a page's text
// may be quoted in one): the run's secrets. Call it before the first Eval.
func (s *Scrape) Redact(f func(string) string) { s.redact = f }

func (s *Scrape) String() string {
	return fmt.Sprintf("scrape of %d %s", len(s.targets), plural(len(s.targets), "page", "pages"))
}

// ValidateScrapeQuery says whether scrape mode can evaluate a query; the
// error (a *promql.Error) names the column and says what is supported.
func ValidateScrapeQuery(q string) error {
	_, err := promql.Parse(q)
	return err
}

// Eval reads every page once, concurrently, and evaluates every query over
// the union of their series. `at` is ignored: the pages are read now. A query
// outside the subset gets a *promql.Error; if any page fails, every other
// query gets a *SourceError naming it (a sum over fewer pages would be a
// wrong number, not a gap). A ctx without a deadline is bounded by
// DefaultTimeout.
func (s *Scrape) Eval(ctx context.Context, _ time.Time, queries []string) []Result {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	results := make([]Result, len(queries))
	parsed := make([]*promql.Query, len(queries))
	valid := 0
	for i, q := range queries {
		pq, err := promql.Parse(q)
		if err != nil {
			results[i].Err = err
			continue
		}
		parsed[i] = pq
		valid++
	}
	if valid == 0 {
		return results
	}
	pages, err := s.fetchAll(ctx)
	for i, pq := range parsed {
		if pq == nil {
			continue
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i] = evalScrapeQuery(pq, pages)
	}
	return results
}

// fetchAll reads every page concurrently; the error names the first failed
// page in the order given and counts the others.
func (s *Scrape) fetchAll(ctx context.Context) ([]*page, error) {
	pages := make([]*page, len(s.targets))
	errs := make([]*SourceError, len(s.targets))
	var wg sync.WaitGroup
	for i, t := range s.targets {
		wg.Go(func() { pages[i], errs[i] = s.fetch(ctx, t) })
	}
	wg.Wait()
	var first *SourceError
	for _, e := range errs {
		switch {
		case e == nil:
		case first == nil:
			c := *e
			if s.redact != nil {
				c.Reason = s.redact(c.Reason)
			}
			first = &c
		default:
			first.More++
		}
	}
	if first != nil {
		return nil, first
	}
	return pages, nil
}

func (t target) fail(reason string, err error) *SourceError {
	return &SourceError{Source: t.source, Where: t.instance, Reason: reason, Err: err}
}

func (s *Scrape) fetch(ctx context.Context, t target) (*page, *SourceError) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, t.fail("bad request: "+ShortError(err), nil)
	}
	req.Header.Set("Accept", acceptText)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, t.fail(ShortError(err), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
		return nil, t.fail(httpReason(resp.StatusCode), nil)
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/vnd.google.protobuf") {
		return nil, t.fail("protobuf page (the text format is needed)", nil)
	}
	body := &countingReader{r: io.LimitReader(resp.Body, maxPageBytes+1)}
	parser := expfmt.NewTextParser(model.UTF8Validation) // the zero TextParser panics
	families, err := parser.TextToMetricFamilies(body)
	switch {
	case body.n > maxPageBytes:
		return nil, t.fail(fmt.Sprintf("page larger than %d MiB", maxPageBytes>>20), nil)
	case err == nil:
	case ctx.Err() != nil:
		return nil, t.fail(ShortError(ctx.Err()), err)
	default:
		var pe expfmt.ParseError
		if errors.As(err, &pe) {
			return nil, t.fail(clip(fmt.Sprintf("not a metrics page: line %d: %s", pe.Line, pe.Msg)), err)
		}
		return nil, t.fail(ShortError(err), err)
	}
	return newPage(families, t.instance), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// label is one label pair; a labelSet is sorted by name and never holds
// __name__ (the series keeps its name apart).
type label struct{ name, value string }

type labelSet []label

func (ls labelSet) get(name string) string {
	for _, l := range ls {
		if l.name == name {
			return l.value
		}
	}
	return ""
}

func (ls labelSet) has(name string) bool {
	for _, l := range ls {
		if l.name == name {
			return true
		}
	}
	return false
}

// with returns a copy of ls with name=value inserted in order.
func (ls labelSet) with(name, value string) labelSet {
	i := sort.Search(len(ls), func(i int) bool { return ls[i].name >= name })
	out := make(labelSet, 0, len(ls)+1)
	out = append(out, ls[:i]...)
	out = append(out, label{name, value})
	return append(out, ls[i:]...)
}

// series is one sample as Prometheus would store it from a scrape.
type series struct {
	name   string
	labels labelSet
	v      float64
}

// page is one /metrics page flattened into series, indexed by name.
type page struct {
	byName map[string][]series
	names  []string // sorted, for selectors without a name
}

// newPage flattens the families the way Prometheus ingests them: a
// histogram becomes name_bucket{le}, name_sum and name_count; a summary
// name{quantile}, name_sum and name_count (a _sum or _count absent from the
// page stays absent). Every series gets instance; one already on the page
// moves to exported_instance.
func newPage(families map[string]*dto.MetricFamily, instance string) *page {
	pg := &page{byName: make(map[string][]series, len(families))}
	add := func(name string, ls labelSet, v float64) {
		pg.byName[name] = append(pg.byName[name], series{name: name, labels: ls, v: v})
	}
	for famName, mf := range families {
		for _, m := range mf.GetMetric() {
			base := make(labelSet, 0, len(m.GetLabel())+1)
			for _, lp := range m.GetLabel() {
				n := lp.GetName()
				if n == "instance" {
					n = "exported_instance"
				}
				base = append(base, label{n, lp.GetValue()})
			}
			sort.Slice(base, func(i, j int) bool { return base[i].name < base[j].name })
			base = base.with("instance", instance)
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(famName, base, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(famName, base, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(famName, base, m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				sm := m.GetSummary()
				for _, q := range sm.GetQuantile() {
					add(famName, base.with("quantile", formatFloat(q.GetQuantile())), q.GetValue())
				}
				if sm.SampleSum != nil {
					add(famName+"_sum", base, sm.GetSampleSum())
				}
				if sm.SampleCount != nil {
					add(famName+"_count", base, float64(sm.GetSampleCount()))
				}
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add(famName+"_bucket", base.with("le", formatFloat(b.GetUpperBound())), countOf(b.CumulativeCount, b.CumulativeCountFloat))
				}
				if h.SampleSum != nil {
					add(famName+"_sum", base, h.GetSampleSum())
				}
				if h.SampleCount != nil || h.SampleCountFloat != nil {
					add(famName+"_count", base, countOf(h.SampleCount, h.SampleCountFloat))
				}
			}
		}
	}
	pg.names = make([]string, 0, len(pg.byName))
	for n := range pg.byName {
		pg.names = append(pg.names, n)
	}
	sort.Strings(pg.names)
	return pg
}

func countOf(u *uint64, f *float64) float64 {
	if f != nil {
		return *f
	}
	if u != nil {
		return float64(*u)
	}
	return 0
}

// formatFloat prints le and quantile values as client_golang writes them
// ("0.3", "1", "1e+06", "+Inf").
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// evalScrapeQuery evaluates one parsed query over the pages, in page order.
func evalScrapeQuery(q *promql.Query, pages []*page) Result {
	var picked []*series
	for _, pg := range pages {
		visit := func(list []series) {
			for i := range list {
				if matchSeries(q, &list[i]) {
					picked = append(picked, &list[i])
				}
			}
		}
		if q.Name != "" {
			visit(pg.byName[q.Name])
			continue
		}
		for _, n := range pg.names {
			visit(pg.byName[n])
		}
	}
	var res Result
	if q.Agg == promql.None {
		res.Vector = make([]Element, 0, len(picked))
		for _, s := range picked {
			labels := make(map[string]string, len(s.labels)+1)
			labels["__name__"] = s.name
			for _, l := range s.labels {
				labels[l.name] = l.value
			}
			res.Vector = append(res.Vector, Element{Labels: labels, V: s.v})
		}
	} else {
		res.Vector = aggregate(q, picked)
	}
	if len(res.Vector) == 0 {
		res.Warnings = missingLabels(q, pages)
	}
	return res
}

func matchSeries(q *promql.Query, s *series) bool {
	for i := range q.Matchers {
		m := &q.Matchers[i]
		v := s.name
		if m.Label != "__name__" {
			v = s.labels.get(m.Label)
		}
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

// missingLabels explains an empty answer when a matcher needs a label that
// no candidate series carries, typically namespace or pod, which Prometheus
// adds from its scrape configuration and a page does not have.
func missingLabels(q *promql.Query, pages []*page) []string {
	var notes []string
	for i := range q.Matchers {
		m := &q.Matchers[i]
		if m.Label == "__name__" || m.Matches("") {
			continue
		}
		candidates, found := 0, false
		for _, pg := range pages {
			names := pg.names
			if q.Name != "" {
				names = []string{q.Name}
			}
			for _, name := range names {
				list := pg.byName[name]
				candidates += len(list)
				for j := 0; j < len(list) && !found; j++ {
					found = list[j].labels.has(m.Label)
				}
			}
		}
		if candidates > 0 && !found {
			notes = append(notes, fmt.Sprintf("no scraped series has a label %q: Prometheus adds labels such as namespace and pod from its scrape configuration, a /metrics page does not", m.Label))
		}
	}
	return notes
}

// group is one output series of an aggregation.
type group struct {
	labels map[string]string
	sum    float64
	val    float64 // min or max so far
	n      int
}

// aggregate applies q.Agg over the series, grouped as PromQL groups them:
// by keeps only the listed labels, without drops them and the name, no
// clause folds everything into one series without labels. Groups come out
// in the order their first series was seen.
func aggregate(q *promql.Query, in []*series) []Element {
	var groups []*group
	index := map[string]*group{}
	var key strings.Builder
	for _, s := range in {
		key.Reset()
		var labels map[string]string
		if q.Grouping != nil || q.Without {
			labels = map[string]string{}
			if q.Without {
				for _, l := range s.labels {
					if !slices.Contains(q.Grouping, l.name) && l.value != "" {
						labels[l.name] = l.value
					}
				}
			} else {
				for _, n := range q.Grouping {
					if v := groupValue(s, n); v != "" {
						labels[n] = v
					}
				}
			}
			names := make([]string, 0, len(labels))
			for n := range labels {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				key.WriteString(n)
				key.WriteByte(0xff)
				key.WriteString(labels[n])
				key.WriteByte(0xff)
			}
		}
		g := index[key.String()]
		if g == nil {
			if labels == nil {
				labels = map[string]string{}
			}
			g = &group{labels: labels, val: s.v}
			index[key.String()] = g
			groups = append(groups, g)
		}
		g.n++
		g.sum += s.v
		switch q.Agg {
		case promql.Min:
			if s.v < g.val || g.val != g.val { // NaN is replaced by any number, as in PromQL
				g.val = s.v
			}
		case promql.Max:
			if s.v > g.val || g.val != g.val {
				g.val = s.v
			}
		}
	}
	out := make([]Element, 0, len(groups))
	for _, g := range groups {
		var v float64
		switch q.Agg {
		case promql.Sum:
			v = g.sum
		case promql.Avg:
			v = g.sum / float64(g.n)
		case promql.Count:
			v = float64(g.n)
		default:
			v = g.val
		}
		out = append(out, Element{Labels: g.labels, V: v})
	}
	return out
}

// groupValue is a label's value for `by`, where __name__ names the series.
func groupValue(s *series, name string) string {
	if name == "__name__" {
		return s.name
	}
	return s.labels.get(name)
}
