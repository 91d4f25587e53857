package timeline

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/scaleout/scaleout/platform"
)

// TextOptions shape the terminal rendering.
type TextOptions struct {
	MaxRows int // above this many rows, show every k-th row and every row with an event (0: 80)
}

// WriteText renders the timeline, the events, the KPIs, the stage table,
// the load summary, the expectations and the verdict for a terminal.
func WriteText(w io.Writer, r *Report, o TextOptions) error {
	ew := &errWriter{w: w}
	writeHeader(ew, r)
	writeRows(ew, r, o)
	writeEvents(ew, r)
	writeKPIs(ew, r)
	writeStages(ew, r)
	writeLoad(ew, r)
	writeVerdict(ew, r)
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func writeHeader(w *errWriter, r *Report) {
	mode := r.Target.API
	if r.Target.Stream {
		mode += ", streamed"
	}
	w.printf("scaleout · %s · %s · %s (%s) · model %s\n", r.Scenario, r.Started.Format("2006-01-02 15:04:05 UTC"),
		r.Target.URL, mode, orDash(r.Target.Model))
	if r.Target.Observation != "" {
		w.printf("observed: %s every %s\n", r.Target.Observation, span(r.IntervalS))
	} else {
		w.printf("observed: nothing (no prometheus or scrape given: load only)\n")
	}
	writeBaseline(w, r)
	if r.Partial {
		w.printf("PARTIAL RUN: %s — what was measured up to then is below\n", orDash(r.PartialReason))
	}
	w.printf("\n")
}

// writeBaseline says how the run found the fleet before the load.
func writeBaseline(w *errWriter, r *Report) {
	b := r.Baseline
	if b == nil {
		return
	}
	var vals []string
	for _, name := range []string{platform.Waiting, platform.Running, platform.Desired, platform.Current, platform.Ready} {
		if v, ok := b.Values[name]; ok {
			if v == nil {
				vals = append(vals, name+" ?")
			} else {
				vals = append(vals, name+" "+num(*v))
			}
		}
	}
	if b.MinReplicas != nil {
		vals = append(vals, fmt.Sprintf("min %s (%s)", num(*b.MinReplicas), b.MinFrom))
	}
	waited := ""
	if b.WaitedS >= 0.5 {
		waited = fmt.Sprintf(", after waiting %s for it", span(b.WaitedS))
	}
	if b.AtRest {
		w.printf("baseline: at rest%s: %s\n", waited, strings.Join(vals, " · "))
		return
	}
	w.printf("baseline: NOT AT REST (%s)%s: %s\n", strings.Join(b.NotAtRest, "; "), waited, strings.Join(vals, " · "))
	w.printf("          expectations that already held before the load do not count; the KPIs are changes from it\n")
}

// column is one column of the terminal table.
type column struct {
	head  string
	right bool
	cell  func(Row) string
}

func columns(r *Report) []column {
	cols := []column{
		{"t", true, func(x Row) string { return Clock(x.T) }},
		{"stage", false, func(x Row) string { return x.Stage }},
		{"rps→", true, func(x Row) string {
			if x.TargetRPS == 0 {
				return "-"
			}
			return rate(x.TargetRPS)
		}},
		{"sent/s", true, func(x Row) string { return rateOf(r, x, x.Sent) }},
		{"done/s", true, func(x Row) string { return rateOf(r, x, x.Done) }},
		{"in-fl", true, func(x Row) string {
			s := fmt.Sprint(x.InFlight)
			if x.Capped {
				s += "!"
			}
			return s
		}},
		{"err", true, func(x Row) string { return fmt.Sprint(x.Errors) }},
	}
	if r.Load.Aborted > 0 {
		cols = append(cols, column{"abort", true, func(x Row) string { return fmt.Sprint(x.Aborted) }})
	}
	cols = append(cols, []column{
		{"ttft p50/p95", true, func(x Row) string {
			if x.TTFTP50 == nil {
				return "-"
			}
			return seconds(*x.TTFTP50) + "/" + seconds(*x.TTFTP95)
		}},
		{"tok/s", true, func(x Row) string { return rate(x.OutputTPS) }},
	}...)
	for _, s := range r.Series {
		name := s.Name
		cols = append(cols, column{name, true, func(x Row) string {
			v := x.Series[name]
			switch {
			case v != nil && name == platform.KVCache:
				return fmt.Sprintf("%.2f", *v)
			case v != nil:
				return num(*v)
			case x.Gaps[name] != "":
				return "gap"
			default:
				return "-"
			}
		}})
	}
	return cols
}

func writeRows(w *errWriter, r *Report, o TextOptions) {
	if len(r.Timeline) == 0 {
		w.printf("(no timeline: the run ended before its first interval)\n\n")
		return
	}
	maxRows := o.MaxRows
	if maxRows <= 0 {
		maxRows = 80
	}
	// Events by row. The rows keep a stage's end (and why it ended); its
	// start and a gap's end are in the stage column and the values.
	byRow := map[int][]string{}
	for _, e := range r.Events {
		if e.Kind != StageEnd && e.hidden() {
			continue
		}
		i := r.rowOf(e.T)
		byRow[i] = append(byRow[i], e.Text)
	}
	stride := 1
	if len(r.Timeline) > maxRows {
		stride = (len(r.Timeline) + maxRows - 1) / maxRows
	}
	cols := columns(r)
	cells := [][]string{}
	var notes []string
	for i, x := range r.Timeline {
		if i%stride != 0 && len(byRow[i]) == 0 && i != len(r.Timeline)-1 {
			continue
		}
		row := make([]string, len(cols))
		for j, c := range cols {
			row[j] = c.cell(x)
		}
		cells = append(cells, row)
		notes = append(notes, strings.Join(byRow[i], " · "))
	}
	heads := make([]string, len(cols))
	for j, c := range cols {
		heads[j] = c.head
	}
	for k, l := range align(heads, cells, func(j int) bool { return cols[j].right }) {
		if k > 0 && notes[k-1] != "" {
			l += "   " + notes[k-1]
		}
		w.printf("%s\n", strings.TrimRight(l, " "))
	}
	if stride > 1 {
		w.printf("(every %d%s row of %d is shown, with every row that has an event; timeline.csv has them all)\n",
			stride, ordinal(stride), len(r.Timeline))
	}
	capped := false
	for _, x := range r.Timeline {
		capped = capped || x.Capped
	}
	if capped {
		w.printf("(! in in-fl: max_in_flight was reached in that row and sends were held back)\n")
	}
	w.printf("\n")
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return "th"
	case n%10 == 2:
		return "nd"
	case n%10 == 3:
		return "rd"
	default:
		return "th"
	}
}

func writeEvents(w *errWriter, r *Report) {
	var parts []string
	for _, e := range r.Events {
		if e.hidden() {
			continue
		}
		parts = append(parts, Clock(e.T)+" "+e.Text)
	}
	if len(parts) == 0 {
		w.printf("events:  none\n")
		return
	}
	w.printf("events:  %s\n", wrap(parts, " · ", 110, "         "))
}

func wrap(parts []string, sep string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, p := range parts {
		if i > 0 {
			if n+len(sep)+len([]rune(p)) > width {
				b.WriteString("\n" + indent)
				n = 0
			} else {
				b.WriteString(sep)
				n += len(sep)
			}
		}
		b.WriteString(p)
		n += len([]rune(p))
	}
	return b.String()
}

func writeKPIs(w *errWriter, r *Report) {
	k := r.KPIs
	var parts []string
	has := func(name string) bool {
		for _, s := range r.Series {
			if s.Name == name {
				return true
			}
		}
		return false
	}
	if has(platform.Waiting) {
		parts = append(parts, "time to queue "+kpiIn(k, kpiTimeToQueue, k.TimeToQueue))
	}
	if has(platform.Desired) {
		parts = append(parts, "time to intent "+kpiIn(k, kpiTimeToIntent, k.TimeToIntent))
	}
	if has(platform.Ready) {
		parts = append(parts, "time to ready "+kpiIn(k, kpiTimeToReady, k.TimeToReady))
	}
	names := make([]string, 0, len(k.Peak))
	for _, s := range r.Series {
		if _, ok := k.Peak[s.Name]; ok {
			names = append(names, s.Name)
		}
	}
	for _, n := range names {
		if n == platform.Waiting || replicaSeries[n] {
			parts = append(parts, fmt.Sprintf("peak %s %s", n, num(k.Peak[n])))
		}
	}
	if k.FallsInLoad > 0 {
		parts = append(parts, fmt.Sprintf("desired fell %d× during the load", k.FallsInLoad))
	}
	if has(platform.Desired) {
		switch {
		case k.ScaleIn != nil:
			parts = append(parts, "scale-in "+kpiIn(k, kpiScaleIn, k.ScaleIn))
		case k.TimeToIntent == nil:
			parts = append(parts, "scale-in n/a (desired never rose)")
		default:
			parts = append(parts, "scale-in not reached")
		}
	}
	if len(parts) == 0 {
		return
	}
	w.printf("kpis:    %s\n", wrap(parts, " · ", 110, "         "))
}

// kpiIn writes a KPI, as a range when it was first seen after a gap in
// its series (KPIs.Earliest holds the range's start under key), marked
// when the Kubernetes API's timestamp measured it.
func kpiIn(k KPIs, key string, v *float64) string {
	if v == nil {
		return "not reached"
	}
	if low, ok := k.Earliest[key]; ok {
		return fmt.Sprintf("%s–%s (in a gap)", span(low), span(*v))
	}
	if k.Clock[key] == "API time" {
		return span(*v) + " (API time)"
	}
	return span(*v)
}

func writeStages(w *errWriter, r *Report) {
	if len(r.Stages) == 0 {
		return
	}
	heads := []string{"stage", "plan", "reqs", "ok", "err%", "rps (target)", "ttft p50/p95/p99", "tpot p50", "itl p50", "e2e p50/p95", "tok/s"}
	var rows [][]string
	good := false
	for _, s := range r.Stages {
		rows = append(rows, stageCells(s.Name, s.Plan, s.LoadReport))
		good = good || s.Goodput != nil
	}
	if len(r.Stages) > 1 {
		rows = append(rows, stageCells("all", "", r.Load))
	}
	if good {
		heads = append(heads, "goodput")
		for i, s := range r.Stages {
			rows[i] = append(rows[i], goodput(s.Goodput))
		}
		if len(r.Stages) > 1 {
			rows[len(rows)-1] = append(rows[len(rows)-1], goodput(r.Load.Goodput))
		}
	}
	w.printf("\n")
	table(w, heads, rows, 2)
	var costs []string
	for _, s := range r.Stages {
		if c := s.Client; c != nil {
			cost := fmt.Sprintf("%s %.2f of %d cores", s.Name, c.CPUCores, c.Cores)
			if c.RSSMB > 0 { // 0: the platform does not tell (only Linux does)
				cost += fmt.Sprintf(", %.0f MB", c.RSSMB)
			}
			if c.busy() {
				cost += fmt.Sprintf(", waited %s for a CPU (a busy machine)", span(*c.CPUWaitS))
			}
			costs = append(costs, cost)
		}
	}
	if len(costs) > 0 {
		w.printf("client:  %s\n", wrap(costs, " · ", 110, "         "))
	}
}

func stageCells(name, plan string, l LoadReport) []string {
	target := "-"
	if l.TargetRPS > 0 {
		target = rate(l.TargetRPS)
	}
	errPct := "-"
	if l.Requests > 0 {
		errPct = fmt.Sprintf("%.1f", 100*l.ErrorRate)
	}
	return []string{name, plan, fmt.Sprint(l.Requests), fmt.Sprint(l.OK), errPct,
		fmt.Sprintf("%s (%s)", rate(l.AchievedRPS), target),
		pct(l.TTFT.P50) + "/" + pct(l.TTFT.P95) + "/" + pct(l.TTFT.P99),
		pct(l.TPOT.P50), pct(l.ITL.P50), pct(l.E2E.P50) + "/" + pct(l.E2E.P95), rate(l.OutputTPS)}
}

func goodput(g *Goodput) string {
	if g == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%% (%s/s)", 100*g.Share, rate(g.RPS))
}

// table prints left-aligned text columns (the first leftCols) and
// right-aligned numbers.
func table(w *errWriter, heads []string, rows [][]string, leftCols int) {
	for _, l := range align(heads, rows, func(j int) bool { return j >= leftCols }) {
		w.printf("%s\n", strings.TrimRight(l, " "))
	}
}

// align lays out the heads, then the rows, as lines of columns two spaces
// apart, each as wide as its widest cell: padded on the left where right(j)
// says so, on the right otherwise. The lines keep their trailing spaces.
func align(heads []string, rows [][]string, right func(j int) bool) []string {
	width := make([]int, len(heads))
	for j, h := range heads {
		width[j] = len([]rune(h))
		for _, r := range rows {
			if j < len(r) {
				width[j] = max(width[j], len([]rune(r[j])))
			}
		}
	}
	line := func(vals []string) string {
		var b strings.Builder
		for j, v := range vals {
			pad := strings.Repeat(" ", width[j]-len([]rune(v)))
			if j > 0 {
				b.WriteString("  ")
			}
			if right(j) {
				b.WriteString(pad + v)
			} else {
				b.WriteString(v + pad)
			}
		}
		return b.String()
	}
	lines := []string{line(heads)}
	for _, r := range rows {
		lines = append(lines, line(r))
	}
	return lines
}

// rateOf is n per second of row x, or "-" for a row too short for a
// rate (see perSecond).
func rateOf(r *Report, x Row, n int64) string {
	v := perSecond(r, x, n)
	if v == nil {
		return "-"
	}
	return rate(*v)
}

// count is a measured count, or "-" when it was not measured.
func count(n *int64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}

func writeLoad(w *errWriter, r *Report) {
	l := r.Load
	w.printf("\nload:    %d requests in %s, %d ok", l.Requests, span(l.LoadS), l.OK)
	if len(l.Errors) > 0 {
		classes := make([]string, 0, len(l.Errors))
		for c := range l.Errors {
			classes = append(classes, c)
		}
		sort.Slice(classes, func(i, j int) bool { return l.Errors[classes[i]] > l.Errors[classes[j]] })
		var parts []string
		for _, c := range classes {
			p := fmt.Sprintf("%s %d", c, l.Errors[c])
			if m := l.ErrorSamples[c]; m != "" {
				p += fmt.Sprintf(" (%q)", truncate(m, 80))
			}
			parts = append(parts, p)
		}
		w.printf(", errors: %s", strings.Join(parts, ", "))
	}
	if l.Aborted > 0 {
		w.printf(", %d aborted by the user (not errors)", l.Aborted)
	}
	w.printf("\n         %d prompt and %d output tokens (%s tok/s); in flight at most %s",
		l.PromptTokens, l.OutputTokens, rate(l.OutputTPS), count(l.MaxInFlight))
	if l.SendLag.N > 0 {
		w.printf("; send lag p99 %s", pct(l.SendLag.P99))
	}
	w.printf("\n")
	if l.CapReached > 0 {
		w.printf("         max_in_flight held back %d sends: the offered rate fell short of the plan\n", l.CapReached)
	}
	for _, n := range r.Notes {
		w.printf("note:    %s\n", n)
	}
}

func writeVerdict(w *errWriter, r *Report) {
	if len(r.Expectations) > 0 {
		w.printf("\nexpectations:\n")
		for _, e := range r.Expectations {
			mark := "ok  "
			if !e.OK {
				mark = "FAIL"
			}
			w.printf("  %s  %s — %s\n", mark, e.Expr, e.Detail)
		}
	}
	if g := r.Guard; g != nil {
		mark := "ok"
		if !g.OK {
			mark = "NOT OK"
		}
		w.printf("\nguard (%s): %s — %s: %s\n", g.Required, mark, g.State, g.Detail)
	}
	if s := r.Server; s != nil {
		w.printf("\nserver (%s): ", s.Source)
		same := s.OK == r.Load.OK && s.OutputTokens == r.Load.OutputTokens
		if s.Requests != nil {
			w.printf("%d requests, ", *s.Requests)
			same = same && *s.Requests == r.Load.Requests
		}
		w.printf("%d ok, %d output tokens", s.OK, s.OutputTokens)
		if same {
			w.printf(" — the same as the client: nothing lost\n")
		} else {
			w.printf(" — the client counted %d requests, %d ok, %d tokens\n", r.Load.Requests, r.Load.OK, r.Load.OutputTokens)
		}
		if s.Detail != "" {
			w.printf("         %s\n", s.Detail)
		}
	}
	switch r.Verdict {
	case "pass":
		w.printf("\nverdict: PASS\n")
	case "fail":
		w.printf("\nverdict: FAIL\n")
	case Unrecorded:
		w.printf("\nverdict: NOT RECORDED (the run directory could not be written whole)\n")
	default:
		w.printf("\nverdict: none (no expectations given)\n")
	}
}

// Clock prints an offset in seconds as m:ss (h:mm:ss past an hour), with
// tenths when it falls between whole seconds.
func Clock(s float64) string {
	if s < 0 {
		return "-" + Clock(-s)
	}
	t := int(s)
	frac := ""
	if tenths := int(math.Round((s - float64(t)) * 10)); tenths == 10 {
		t++
	} else if tenths > 0 {
		frac = fmt.Sprintf(".%d", tenths)
	}
	if t < 3600 {
		return fmt.Sprintf("%d:%02d%s", t/60, t%60, frac)
	}
	return fmt.Sprintf("%d:%02d:%02d%s", t/3600, t/60%60, t%60, frac)
}

// span prints a length of time: 0.5s and 45s below a minute, else as Clock.
func span(s float64) string {
	switch {
	case s < 10 && s != math.Trunc(s):
		return trimZeros(fmt.Sprintf("%.1f", s)) + "s"
	case s < 59.5:
		return fmt.Sprintf("%.0fs", s)
	default:
		return Clock(math.Round(s))
	}
}

// seconds prints milliseconds as seconds with two decimals, or ms below 0.1 s.
func seconds(msv float64) string {
	if msv < 100 {
		return fmt.Sprintf("%.0fms", msv)
	}
	return fmt.Sprintf("%.2fs", msv/1000)
}

func pct(v *float64) string {
	if v == nil {
		return "-"
	}
	if *v < 10 {
		return fmt.Sprintf("%.1fms", *v)
	}
	return seconds(*v)
}

func rate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
