package timeline

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/scaleout/scaleout/internal/spell"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
)

// An expectation is a condition on a series, a KPI or a load figure:
//
//	<subject> <op> <number>[unit] [when]
//	when:  within <duration> | for <duration> | always | at end | after load [within <duration>]
//
// Series conditions hold when one sample meets them (within: no later
// than that long after the load started; after load: once the load has
// stopped, optionally within that long of the stop), when every sample
// does (always), when the samples meet them without a break for a while
// (for), or when the last sample does (at end). KPIs and load figures are
// single numbers and take no when.
//
// The conditions that hold on one sample or a run of them (no when, within,
// for, after load) say that something comes about in the run. When the run
// read a baseline and the series already met the condition then, a sample
// counts only after one has not met it: a value that was there before the
// load proves nothing about the load. always and at end are states, checked
// as they are.
//
// for D holds once the samples that meet it in a row span D less half an
// interval, with D first rounded up to whole intervals: samples come one
// interval apart, give or take a few milliseconds, and that jitter must not
// cost a whole interval (at 15 s, for 30s holds on three samples in a row
// 29.999 s apart; for 20s needs three as well).
type Expectation struct {
	Text    string
	Subject string
	Op      string
	Value   float64 // in the subject's unit: seconds for times, a fraction for rates
	When    When
	Within  time.Duration // for WhenWithin and WhenAfterLoad (0: no limit)
	For     time.Duration
	kind    subjectKind
}

// When says which samples a series condition is checked on.
type When int

// The whens.
const (
	WhenEver When = iota
	WhenWithin
	WhenFor
	WhenAlways
	WhenEnd
	WhenAfterLoad
)

type subjectKind int

const (
	subjSeries subjectKind = iota
	subjKPI
	subjLoad
)

// SyntaxError is a parse error at a column (1-based) of the text.
type SyntaxError struct {
	Col int
	Msg string
	// Unobserved is set when the subject is a series scaleout knows
	// (desired, waiting, …) that the run does not observe: the caller can
	// say why.
	Unobserved string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("column %d: %s", e.Col, e.Msg) }

// kpis are the KPI subjects, in seconds.
var kpis = map[string]func(KPIs) *float64{
	"time_to_queue":  func(k KPIs) *float64 { return k.TimeToQueue },
	"time_to_intent": func(k KPIs) *float64 { return k.TimeToIntent },
	"time_to_ready":  func(k KPIs) *float64 { return k.TimeToReady },
	"scale_in":       func(k KPIs) *float64 { return k.ScaleIn },
	"ready_in":       func(k KPIs) *float64 { return k.ReadyIn },
	"intent_lag":     func(k KPIs) *float64 { return k.IntentLag },
}

// loadFigure returns a load figure by name: error_rate (a fraction),
// requests, ok, errors, achieved_rps, output_tps, goodput (a fraction),
// send_lag_p99 and <ttft|e2e|itl|tpot>_<p50|p90|p95|p99|max> (seconds).
func loadFigure(l LoadReport, name string) (*float64, bool) {
	switch name {
	case "error_rate":
		return fptr(l.ErrorRate), true
	case "requests":
		return fptr(float64(l.Requests)), true
	case "ok":
		return fptr(float64(l.OK)), true
	case "errors":
		return fptr(float64(l.Requests - l.OK)), true
	case "achieved_rps":
		return fptr(l.AchievedRPS), true
	case "output_tps":
		return fptr(l.OutputTPS), true
	case "goodput":
		if l.Goodput == nil {
			return nil, true
		}
		return fptr(l.Goodput.Share), true
	case "send_lag_p99":
		return msToS(l.SendLag.P99), true
	}
	base, q, ok := strings.Cut(name, "_")
	if !ok {
		return nil, false
	}
	var s measure.Summary
	switch base {
	case "ttft":
		s = l.TTFT
	case "e2e":
		s = l.E2E
	case "itl":
		s = l.ITL
	case "tpot":
		s = l.TPOT
	default:
		return nil, false
	}
	switch q {
	case "p50":
		return msToS(s.P50), true
	case "p90":
		return msToS(s.P90), true
	case "p95":
		return msToS(s.P95), true
	case "p99":
		return msToS(s.P99), true
	case "max":
		return msToS(s.Max), true
	case "mean":
		return msToS(s.Mean), true
	}
	return nil, false
}

func msToS(v *float64) *float64 {
	if v == nil {
		return nil
	}
	return fptr(*v / 1000)
}

// timeSubject reports whether a subject is measured in seconds.
func timeSubject(name string) bool {
	if _, ok := kpis[name]; ok {
		return true
	}
	base, _, _ := strings.Cut(name, "_")
	return base == "ttft" || base == "e2e" || base == "itl" || base == "tpot" || name == "send_lag_p99"
}

func fractionSubject(name string) bool { return name == "error_rate" || name == "goodput" }

// ParseExpectation parses one expectation; series are the names a series
// subject may take. Errors are *SyntaxError with the column.
func ParseExpectation(text string, series []string) (*Expectation, error) {
	lx := &lexer{s: text}
	e := &Expectation{Text: strings.TrimSpace(text)}
	subj, col := lx.word()
	if subj == "" {
		return nil, &SyntaxError{Col: col, Msg: "want a series, KPI or load figure first (e.g. desired, time_to_intent, ttft_p95)"}
	}
	e.Subject = subj
	switch {
	case slices.Contains(series, subj):
		e.kind = subjSeries
	case kpis[subj] != nil:
		e.kind = subjKPI
	default:
		if _, ok := loadFigure(LoadReport{}, subj); ok {
			e.kind = subjLoad
		} else if platform.Known(subj) {
			return nil, &SyntaxError{Col: col, Msg: fmt.Sprintf("%q is not observed in this run, so it is unknown", subj), Unobserved: subj}
		} else {
			known := append(append([]string{}, series...), "error_rate", "ttft_p95", "time_to_intent", "scale_in")
			msg := fmt.Sprintf("%q is not a series, KPI or load figure", subj)
			if s := spell.Closest(subj, allSubjects(series)); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			} else {
				msg += fmt.Sprintf(" (try one of %s)", strings.Join(known, ", "))
			}
			return nil, &SyntaxError{Col: col, Msg: msg}
		}
	}
	op, col := lx.op()
	if op == "" {
		return nil, &SyntaxError{Col: col, Msg: "want a comparison: >=, >, <=, <, == or !="}
	}
	e.Op = op
	numText, col := lx.word()
	v, err := parseNumber(numText, subj)
	if err != nil {
		return nil, &SyntaxError{Col: col, Msg: err.Error()}
	}
	e.Value = v
	// The when.
	w, col := lx.word()
	switch w {
	case "":
	case "within":
		e.When = WhenWithin
		d, dcol := lx.word()
		if e.Within, err = parseDur(d); err != nil {
			return nil, &SyntaxError{Col: dcol, Msg: "within " + err.Error()}
		}
	case "for":
		e.When = WhenFor
		d, dcol := lx.word()
		if e.For, err = parseDur(d); err != nil {
			return nil, &SyntaxError{Col: dcol, Msg: "for " + err.Error()}
		}
	case "always":
		e.When = WhenAlways
	case "at":
		if x, xcol := lx.word(); x != "end" {
			return nil, &SyntaxError{Col: xcol, Msg: `want "at end"`}
		}
		e.When = WhenEnd
	case "after":
		if x, xcol := lx.word(); x != "load" {
			return nil, &SyntaxError{Col: xcol, Msg: `want "after load"`}
		}
		e.When = WhenAfterLoad
		if x, xcol := lx.word(); x == "within" {
			d, dcol := lx.word()
			if e.Within, err = parseDur(d); err != nil {
				return nil, &SyntaxError{Col: dcol, Msg: "within " + err.Error()}
			}
		} else if x != "" {
			return nil, &SyntaxError{Col: xcol, Msg: fmt.Sprintf("unexpected %q (after load may be followed by within <duration>)", x)}
		}
	default:
		return nil, &SyntaxError{Col: col, Msg: fmt.Sprintf("unexpected %q (want within <duration>, for <duration>, always, at end or after load)", w)}
	}
	if e.When != WhenEver && e.kind != subjSeries {
		return nil, &SyntaxError{Col: col, Msg: fmt.Sprintf("%s is one number for the whole run; it takes no %q", subj, w)}
	}
	if rest, rcol := lx.word(); rest != "" {
		return nil, &SyntaxError{Col: rcol, Msg: fmt.Sprintf("unexpected %q after the condition", rest)}
	}
	return e, nil
}

func allSubjects(series []string) []string {
	out := append([]string{}, series...)
	for k := range kpis {
		out = append(out, k)
	}
	out = append(out, "error_rate", "requests", "ok", "errors", "achieved_rps", "output_tps", "goodput", "send_lag_p99")
	for _, b := range []string{"ttft", "e2e", "itl", "tpot"} {
		for _, q := range []string{"p50", "p90", "p95", "p99", "max", "mean"} {
			out = append(out, b+"_"+q)
		}
	}
	return out
}

func parseDur(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		if s == "" {
			return 0, fmt.Errorf("needs a duration (e.g. 2m)")
		}
		return 0, fmt.Errorf("%q is not a duration (e.g. 90s, 2m, 1h)", s)
	}
	return d, nil
}

// parseNumber reads the compared value: a plain number, a percentage
// (1% → 0.01) for fractions, or a duration (2s, 150ms) for time subjects.
func parseNumber(s, subj string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("want a number after the comparison")
	}
	if strings.HasSuffix(s, "%") {
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a percentage", s)
		}
		if !fractionSubject(subj) {
			return 0, fmt.Errorf("%s is not a share: a percentage does not apply", subj)
		}
		return v / 100, nil
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		if timeSubject(subj) && v != 0 {
			return 0, fmt.Errorf("%q needs a unit: %s is a time (e.g. %ss or %sms)", s, subj, s, s)
		}
		if fractionSubject(subj) && v != 0 {
			return 0, fmt.Errorf("%q is ambiguous: %s is a share, write it as a percentage (e.g. %s%%)", s, subj, s)
		}
		return v, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number, a percentage or a duration", s)
	}
	if !timeSubject(subj) {
		return 0, fmt.Errorf("%s is not a time: %q does not apply", subj, s)
	}
	return d.Seconds(), nil
}

type lexer struct {
	s   string
	pos int
}

func (l *lexer) skip() {
	for l.pos < len(l.s) && l.s[l.pos] == ' ' || l.pos < len(l.s) && l.s[l.pos] == '\t' {
		l.pos++
	}
}

// word returns the next run of letters, digits, '.', '%' and '_'.
func (l *lexer) word() (string, int) {
	l.skip()
	start := l.pos
	for l.pos < len(l.s) {
		c := rune(l.s[l.pos])
		if unicode.IsLetter(c) || unicode.IsDigit(c) || c == '_' || c == '.' || c == '%' || c == '-' {
			l.pos++
			continue
		}
		break
	}
	if l.pos == start && l.pos < len(l.s) {
		// A character that starts no word: report it as the word.
		l.pos++
	}
	return l.s[start:l.pos], start + 1
}

func (l *lexer) op() (string, int) {
	l.skip()
	col := l.pos + 1
	for _, op := range []string{">=", "<=", "==", "!=", ">", "<", "≥", "≤"} {
		if strings.HasPrefix(l.s[l.pos:], op) {
			l.pos += len(op)
			switch op {
			case "≥":
				return ">=", col
			case "≤":
				return "<=", col
			}
			return op, col
		}
	}
	return "", col
}

func (e *Expectation) holds(v float64) bool {
	const eps = 1e-9
	switch e.Op {
	case ">=":
		return v >= e.Value-eps
	case ">":
		return v > e.Value
	case "<=":
		return v <= e.Value+eps
	case "<":
		return v < e.Value
	case "==":
		return math.Abs(v-e.Value) <= eps
	default:
		return math.Abs(v-e.Value) > eps
	}
}

// better reports whether a is closer than b to meeting the condition.
func (e *Expectation) better(a, b float64) bool {
	switch e.Op {
	case ">=", ">":
		return a > b
	case "<=", "<":
		return a < b
	default:
		return math.Abs(a-e.Value) < math.Abs(b-e.Value) == (e.Op == "==")
	}
}

func (e *Expectation) show(v float64) string {
	switch {
	case timeSubject(e.Subject):
		return span(v)
	case fractionSubject(e.Subject):
		return trimZeros(fmt.Sprintf("%.2f", v*100)) + "%"
	default:
		return num(v)
	}
}

// Evaluate checks the expectation against a finished report.
func (e *Expectation) Evaluate(r *Report) Outcome {
	out := Outcome{Expr: e.Text}
	switch e.kind {
	case subjKPI:
		v := kpis[e.Subject](r.KPIs)
		if v == nil {
			out.Detail = e.Subject + " was not reached"
			return out
		}
		out.OK = e.holds(*v)
		out.Detail = fmt.Sprintf("%s was %s", e.Subject, e.show(*v))
		return out
	case subjLoad:
		v, _ := loadFigure(r.Load, e.Subject)
		if v == nil {
			out.Detail = e.Subject + " was not measured"
			return out
		}
		out.OK = e.holds(*v)
		out.Detail = fmt.Sprintf("%s was %s", e.Subject, e.show(*v))
		return out
	}
	return e.evalSeries(r)
}

// point is one sample of a series: its time and value (nil for a gap).
type point struct {
	t float64
	v *float64
}

// forSpan is how far apart the first and last of a run of samples must be
// for a for-d condition, at one sample every interval: d rounded up to
// whole intervals, less half an interval for the jitter of sample times.
func forSpan(d, interval time.Duration) time.Duration {
	if d <= 0 || interval <= 0 {
		return d
	}
	n := (d + interval - 1) / interval
	return n*interval - interval/2
}

// before is the value a series had before the load and where it was read,
// when the report has a baseline: its value there, else (a gap) the
// series' first value.
func (r *Report) before(name string) (v float64, from string, ok bool) {
	if r.Baseline == nil {
		return 0, "", false
	}
	if b := r.Baseline.Values[name]; b != nil {
		return *b, "at the baseline", true
	}
	v, ok = r.KPIs.Start[name]
	return v, "at its first sample (no baseline value)", ok
}

func (e *Expectation) points(r *Report) []point {
	var pts []point
	for _, row := range r.Timeline {
		if row.SampleT == nil {
			continue
		}
		pts = append(pts, point{*row.SampleT, row.Series[e.Subject]})
	}
	return pts
}

func loadEndOf(r *Report) float64 {
	for _, ev := range r.Events {
		if ev.Kind == LoadStop {
			return ev.T
		}
	}
	return r.DurationS
}

func (e *Expectation) evalSeries(r *Report) Outcome {
	out := Outcome{Expr: e.Text}
	pts := e.points(r)
	loadEnd := loadEndOf(r)
	var best *point
	consider := func(p point) {
		if p.v != nil && (best == nil || e.better(*p.v, *best.v)) {
			pp := p
			best = &pp
		}
	}
	bestText := func(scope string) string {
		if best == nil {
			return fmt.Sprintf("%s had no value %s", e.Subject, scope)
		}
		return fmt.Sprintf("not met %s: best seen %s %s at %s", scope, e.Subject, e.show(*best.v), Clock(best.t))
	}
	// armed: a sample that meets the condition counts (see Expectation);
	// carried counts those that met it only as they did before the load.
	base, baseAt, known := r.before(e.Subject)
	armed := !known || !e.holds(base)
	carried := 0
	// observe takes the next sample: whether it counts, and whether its
	// value meets the condition at all.
	observe := func(p point) (counts, meets bool) {
		meets = p.v != nil && e.holds(*p.v)
		if p.v != nil && !meets {
			armed = true
		}
		if meets && !armed {
			carried++
		}
		return meets && armed, meets
	}
	unproven := func(scope string) string {
		if scope != "" {
			scope = " " + scope
		}
		return fmt.Sprintf("not shown%s: it already held before the load (%s %s %s) and never stopped holding, so the load did not bring it about",
			scope, e.Subject, e.show(base), baseAt)
	}
	switch e.When {
	case WhenEver, WhenWithin, WhenAfterLoad:
		scope := "during the run"
		from, to := math.Inf(-1), math.Inf(1)
		if e.When == WhenWithin {
			to = e.Within.Seconds()
			scope = "within " + span(to) + " of the load's start"
		}
		if e.When == WhenAfterLoad {
			from = loadEnd
			scope = "after the load"
			if e.Within > 0 {
				to = loadEnd + e.Within.Seconds()
				scope = "within " + span(e.Within.Seconds()) + " after the load"
			}
		}
		gaps := 0
		for _, p := range pts {
			if p.t > to {
				break
			}
			counts, meets := observe(p)
			if p.t < from {
				continue
			}
			if p.v == nil {
				gaps++
			}
			if counts {
				out.OK = true
				out.Detail = fmt.Sprintf("held at %s (%s %s)", Clock(p.t), e.Subject, e.show(*p.v))
				if e.When == WhenAfterLoad {
					out.Detail = fmt.Sprintf("held at %s, %s after the load (%s %s)", Clock(p.t), span(p.t-loadEnd), e.Subject, e.show(*p.v))
				}
				return out
			}
			if !meets {
				consider(p)
			}
		}
		if !armed {
			out.Detail = unproven(scope)
			return out
		}
		out.Detail = bestText(scope)
		if gaps > 0 && best != nil {
			out.Detail += fmt.Sprintf(" (%s in that span had no value)", plural(float64(gaps), "sample"))
		}
	case WhenAlways:
		n, gaps := 0, 0
		for _, p := range pts {
			if p.v == nil {
				gaps++
				continue
			}
			n++
			if !e.holds(*p.v) {
				out.Detail = fmt.Sprintf("broken at %s (%s %s)", Clock(p.t), e.Subject, e.show(*p.v))
				return out
			}
		}
		if n == 0 {
			out.Detail = e.Subject + " had no value during the run"
			return out
		}
		out.OK = true
		out.Detail = fmt.Sprintf("held in all %d samples", n)
		if gaps > 0 {
			out.Detail += fmt.Sprintf(" with a value (%s had none: it was not seen there)", plural(float64(gaps), "sample"))
		}
	case WhenEnd:
		for i := len(pts) - 1; i >= 0; i-- {
			if p := pts[i]; p.v != nil {
				out.OK = e.holds(*p.v)
				out.Detail = fmt.Sprintf("%s was %s at %s", e.Subject, e.show(*p.v), Clock(p.t))
				return out
			}
		}
		out.Detail = e.Subject + " had no value at the end"
	case WhenFor:
		need := forSpan(e.For, time.Duration(r.IntervalS*float64(time.Second))).Seconds()
		var since *float64
		longest := 0.0
		for _, p := range pts {
			if counts, meets := observe(p); !counts {
				since = nil
				if !meets {
					consider(p)
				}
				continue
			}
			if since == nil {
				since = fptr(p.t)
			}
			longest = max(longest, p.t-*since)
			if p.t-*since >= need-1e-9 {
				out.OK = true
				out.Detail = fmt.Sprintf("held from %s to %s", Clock(*since), Clock(p.t))
				return out
			}
		}
		switch {
		case !armed:
			out.Detail = unproven("")
		case longest > 0:
			out.Detail = fmt.Sprintf("held for %s at most, not %s", span(longest), span(e.For.Seconds()))
		default:
			out.Detail = bestText("at any time")
		}
	}
	if carried > 0 && armed && !out.OK {
		out.Detail += fmt.Sprintf(" (%s met it only as it did before the load: %s %s %s)",
			plural(float64(carried), "earlier sample"), e.Subject, e.show(base), baseAt)
	}
	return out
}

// Live is an expectation checked while the run goes on (a stage's until):
// a series condition on the latest sample, with for measured across
// consecutive samples, and, as at the end, only once it has come about.
type Live struct {
	e       *Expectation
	since   time.Duration
	on      bool
	decided bool // armed is known: the value before the load is
	armed   bool
}

// NewLive makes a live check of a series expectation; only series
// subjects with no when or with for can be checked live.
func NewLive(e *Expectation) (*Live, error) {
	if e.kind != subjSeries {
		return nil, fmt.Errorf("%s is known only at the end of the run; until needs a series (e.g. until: desired >= 3)", e.Subject)
	}
	if e.When != WhenEver && e.When != WhenFor {
		return nil, fmt.Errorf("until takes a condition on the latest sample, optionally with for <duration>")
	}
	return &Live{e: e}, nil
}

// Holds checks the timeline's latest sample.
func (l *Live) Holds(t *Timeline) bool {
	if !l.decided {
		if b, known, applies := t.before(l.e.Subject); !applies || known {
			l.decided, l.armed = true, !applies || !l.e.holds(b)
		}
	}
	s := t.Latest()
	v, ok := t.ValueIn(s, l.e.Subject)
	met := ok && v.OK() && l.e.holds(v.V)
	if ok && v.OK() && !met {
		l.armed = true
	}
	if !met || !l.armed {
		l.on = false
		return false
	}
	if !l.on {
		l.on, l.since = true, s.At
	}
	return s.At-l.since >= forSpan(l.e.For, t.cfg.Interval)
}
