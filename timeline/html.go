package timeline

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/scaleout/scaleout/platform"
)

// Assets are the charting library the HTML page inlines, so the page needs
// no network: uPlot's script and stylesheet. The caller supplies them (the
// command takes them from vegeta's plot package, which embeds uPlot), which
// keeps this package free of network code.
type Assets struct {
	UPlotJS  []byte
	UPlotCSS []byte
}

// chartData is what the page's script draws: one x axis (seconds) and the
// columns of each chart, with stage bands and event markers.
type chartData struct {
	T        []float64                 `json:"t"`
	Load     *chartCols                `json:"load"`
	Replicas *chartCols                `json:"replicas"`
	Queue    *chartCols                `json:"queue"`
	Latency  *chartCols                `json:"latency"`
	Stages   []chartStage              `json:"stages"`
	Events   []chartEvent              `json:"events"`
	Dists    map[string]map[string]any `json:"dists"`
}

// chartCols are a chart's series in the order they were first added.
type chartCols struct {
	Names  []string     `json:"names"`
	Values [][]*float64 `json:"values"`
	Right  []string     `json:"right"` // the series on the right axis
}

func (c *chartCols) add(name string, v *float64) {
	for i, n := range c.Names {
		if n == name {
			c.Values[i] = append(c.Values[i], v)
			return
		}
	}
	c.Names = append(c.Names, name)
	c.Values = append(c.Values, []*float64{v})
}

type chartStage struct {
	Name  string  `json:"name"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

type chartEvent struct {
	T    float64 `json:"t"`
	Text string  `json:"text"`
	Kind string  `json:"kind"`
}

func buildChartData(r *Report) chartData {
	d := chartData{Load: &chartCols{}, Replicas: &chartCols{}, Queue: &chartCols{Right: []string{}}, Latency: &chartCols{}, Dists: map[string]map[string]any{}}
	for _, s := range r.Series {
		if s.Name == platform.KVCache { // a fraction, not requests
			d.Queue.Right = append(d.Queue.Right, s.Name)
		}
	}
	for _, x := range r.Timeline {
		d.T = append(d.T, x.T)
		d.Load.add("target rps", nilIfZero(x.TargetRPS, x.Stage == "after" || x.Stage == "-"))
		d.Load.add("sent/s", perSecond(r, x, x.Sent))
		d.Load.add("done/s", perSecond(r, x, x.Done))
		d.Load.add("errors/s", perSecond(r, x, x.Errors))
		d.Load.add("in flight", fptr(float64(x.InFlight)))
		d.Latency.add("ttft p50 (s)", msToS(x.TTFTP50))
		d.Latency.add("ttft p95 (s)", msToS(x.TTFTP95))
		for _, s := range r.Series {
			if replicaSeries[s.Name] || s.Name == platform.Predicted {
				d.Replicas.add(s.Name, x.Series[s.Name])
			} else {
				d.Queue.add(s.Name, x.Series[s.Name])
			}
		}
	}
	for _, s := range r.Stages {
		if s.EndedBy != NotStarted {
			d.Stages = append(d.Stages, chartStage{s.Name, s.StartS, s.EndS})
		}
	}
	for _, e := range r.Events {
		if e.hidden() {
			continue
		}
		d.Events = append(d.Events, chartEvent{e.T, e.Text, string(e.Kind)})
	}
	for name, l := range loads(r) {
		d.Dists[name] = map[string]any{"ttft": l.TTFT, "tpot": l.TPOT, "itl": l.ITL, "e2e": l.E2E}
	}
	return d
}

// perSecond is n per second of row x; nil for a row shorter than a
// quarter of the interval (the run's last row can last a few
// milliseconds: what ended in it is no rate, and would dwarf the curve).
// timeline.csv keeps its counts.
func perSecond(r *Report, x Row, n int64) *float64 {
	if x.Span <= 0 || x.Span < r.IntervalS/4 {
		return nil
	}
	return fptr(Round3(float64(n) / x.Span))
}

func nilIfZero(v float64, none bool) *float64 {
	if none {
		return nil
	}
	return fptr(v)
}

func loads(r *Report) map[string]LoadReport {
	out := map[string]LoadReport{"all": r.Load}
	for _, s := range r.Stages {
		out[s.Name] = s.LoadReport
	}
	return out
}

// WriteHTML writes report.html: one self-contained page with the timeline
// charts (load, queue, replicas and TTFT on one time axis, with stage bands
// and event markers), the latency distributions per stage, the KPIs, the
// expectations and the verdict.
func WriteHTML(w io.Writer, r *Report, a Assets) error {
	data, err := json.Marshal(buildChartData(r))
	if err != nil {
		return err
	}
	var kpiText strings.Builder
	ew := &errWriter{w: &kpiText}
	writeKPIs(ew, r)
	var stageText strings.Builder
	writeStages(&errWriter{w: &stageText}, r)
	var loadText strings.Builder
	writeLoad(&errWriter{w: &loadText}, r)
	view := struct {
		R        *Report
		Title    string
		Data     template.JS
		JS       template.JS
		CSS      template.CSS
		KPIs     string
		Stages   string
		LoadText string
		Started  string
	}{
		R: r, Title: "scaleout · " + r.Scenario, Data: template.JS(data),
		JS: template.JS(a.UPlotJS), CSS: template.CSS(a.UPlotCSS),
		KPIs:     strings.TrimPrefix(strings.TrimSpace(kpiText.String()), "kpis:"),
		Stages:   strings.Trim(stageText.String(), "\n"),
		LoadText: strings.Trim(loadText.String(), "\n"),
		Started:  r.Started.Format("2006-01-02 15:04:05 UTC"),
	}
	return pageTemplate.Execute(w, view)
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"clock": Clock,
	"upper": strings.ToUpper,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>{{.CSS}}</style>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #1d232b; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #56606d; }
.verdict { display: inline-block; padding: 4px 12px; border-radius: 4px; font-weight: 600; margin: 12px 0; }
.verdict.pass { background: #dff3e4; color: #11632b; }
.verdict.fail { background: #fbe1df; color: #a1160a; }
.verdict.none { background: #eceff3; color: #3b4450; }
.verdict.unrecorded { background: #fbe1df; color: #a1160a; }
.partial { background: #fff4d6; color: #7a5200; padding: 6px 10px; border-radius: 4px; }
pre { background: #f6f8fa; padding: 10px 12px; border-radius: 4px; overflow-x: auto; font-size: 12.5px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 3px 10px; border-bottom: 1px solid #e3e7ec; text-align: left; }
td.ok { color: #11632b; font-weight: 600; } td.fail { color: #a1160a; font-weight: 600; }
.chart { margin: 6px 0 18px; }
.u-legend { font-size: 12px; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<div class="meta">{{.Started}} · {{.R.Target.URL}} ({{.R.Target.API}}{{if .R.Target.Stream}}, streamed{{end}}) · model {{.R.Target.Model}}{{if .R.Target.Observation}} · observed: {{.R.Target.Observation}}{{end}}</div>
{{if .R.Partial}}<p class="partial">Partial run: {{.R.PartialReason}}. What was measured up to then is shown.</p>{{end}}
<div class="verdict {{.R.Verdict}}" id="verdict">verdict: {{upper (print .R.Verdict)}}</div>
{{if .R.Expectations}}<table id="expectations"><tr><th></th><th>expectation</th><th>result</th></tr>
{{range .R.Expectations}}<tr><td class="{{if .OK}}ok{{else}}fail{{end}}">{{if .OK}}ok{{else}}FAIL{{end}}</td><td>{{.Expr}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{end}}
{{if .R.Guard}}<p>guard ({{.R.Guard.Required}}): <b>{{.R.Guard.State}}</b> — {{.R.Guard.Detail}}</p>{{end}}
<h2>KPIs</h2>
<pre id="kpis">{{.KPIs}}</pre>
<h2>Timeline</h2>
<div class="chart" id="chart-load"></div>
<div class="chart" id="chart-queue"></div>
<div class="chart" id="chart-replicas"></div>
<div class="chart" id="chart-latency"></div>
<h2>Events</h2>
<table id="events">{{range .R.Events}}<tr><td>{{clock .T}}</td><td>{{.Text}}</td></tr>{{end}}</table>
<h2>Stages and latency distributions</h2>
<pre>{{.Stages}}</pre>
<div class="chart" id="chart-dists"></div>
<pre>{{.LoadText}}</pre>
<script>{{.JS}}</script>
<script>
const D = {{.Data}};
const palette = ["#2f6fdf", "#e0692b", "#1f9d55", "#a23bd1", "#c9302c", "#7a8696", "#d4a017", "#0e9aa7"];
function fmtClock(s) { s = Math.round(s); const m = Math.floor(s / 60), r = s % 60; return m + ":" + String(r).padStart(2, "0"); }
// Stage bands and event markers, drawn under the series.
function bandsPlugin() {
  return { hooks: { drawClear: [u => {
    const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
    ctx.save();
    D.stages.forEach((s, i) => {
      const x0 = u.valToPos(s.start, "x", true), x1 = u.valToPos(s.end, "x", true);
      ctx.fillStyle = i % 2 ? "rgba(47,111,223,0.05)" : "rgba(47,111,223,0.11)";
      ctx.fillRect(x0, top, x1 - x0, h);
      ctx.fillStyle = "#56606d"; ctx.font = (11 * devicePixelRatio) + "px sans-serif";
      ctx.fillText(s.name, x0 + 4 * devicePixelRatio, top + 12 * devicePixelRatio);
    });
    D.events.forEach(e => {
      if (e.kind === "gap" || e.kind === "note") return;
      const x = u.valToPos(e.t, "x", true);
      ctx.strokeStyle = e.kind === "change" ? "rgba(162,59,209,0.55)" : "rgba(120,120,120,0.4)";
      ctx.setLineDash([4, 4]); ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
    });
    ctx.restore();
  }]}};
}
function chart(id, title, cols, opts) {
  const names = cols.names;
  if (names.length === 0 || D.t.length === 0) { document.getElementById(id).style.display = "none"; return; }
  const series = [{ label: "t", value: (u, v) => v == null ? "-" : fmtClock(v) }];
  names.forEach((n, i) => series.push(Object.assign({ label: n, stroke: palette[i % palette.length], width: 1.6, spanGaps: false },
    (opts.right || []).includes(n) ? { scale: "r" } : {}, (opts.step ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}))));
  const axes = [{ values: (u, vals) => vals.map(fmtClock) }, { label: opts.y || "" }];
  if (opts.right) axes.push({ side: 1, scale: "r", grid: { show: false }, label: opts.right.join(", ") });
  new uPlot({ title: title, width: Math.min(1160, window.innerWidth - 40), height: 230, series: series, axes: axes,
    scales: { x: { time: false } }, plugins: [bandsPlugin()] }, [D.t].concat(cols.values), document.getElementById(id));
}
chart("chart-load", "Load: offered and achieved rate, in flight", D.load, { y: "requests/s", right: ["in flight"] });
chart("chart-queue", "Queue: waiting, running and KV cache", D.queue, { y: "requests", right: D.queue.right });
chart("chart-replicas", "Replicas: desired, current, ready", D.replicas, { y: "replicas", step: true });
chart("chart-latency", "Time to first token per interval", D.latency, { y: "seconds" });
// Latency distributions: percentiles per stage, on a log scale.
(function () {
  const qs = ["p50", "p90", "p95", "p99", "max"], names = Object.keys(D.dists).sort((a, b) => a === "all" ? 1 : b === "all" ? -1 : 0);
  const el = document.getElementById("chart-dists");
  const cols = {};
  names.forEach(n => ["ttft", "tpot", "e2e"].forEach(m => { const s = D.dists[n][m]; if (s && s.n > 0) cols[n + " " + m] = qs.map(q => s[q] / 1000); }));
  const keys = Object.keys(cols);
  if (keys.length === 0) { el.style.display = "none"; return; }
  const series = [{ label: "percentile", value: (u, v) => qs[v] || "" }];
  keys.forEach((k, i) => series.push({ label: k, stroke: palette[i % palette.length], width: 1.6, points: { show: true } }));
  new uPlot({ title: "Latency percentiles (seconds, log scale)", width: Math.min(1160, window.innerWidth - 40), height: 260, series: series,
    scales: { x: { time: false }, y: { distr: 3 } }, axes: [{ values: (u, vals) => vals.map(v => qs[v] || "") }, {}] },
    [qs.map((_, i) => i)].concat(keys.map(k => cols[k])), el);
})();
</script>
</body>
</html>
`))

// percentChange is b against a in percent, to one decimal; a change that
// rounds to nothing is 0.0%, never -0.0%.
func percentChange(a, b float64) string {
	d := math.Round(1000*(b-a)/a) / 10
	if d == 0 {
		return "0.0%"
	}
	return fmt.Sprintf("%+.1f%%", d)
}

// WriteComparison prints two runs side by side: KPIs, load figures and
// percentiles, and the verdicts.
func WriteComparison(w io.Writer, a, b *Report, nameA, nameB string) error {
	ew := &errWriter{w: w}
	ew.printf("comparing %s (A: %s, %s) with %s (B: %s, %s)\n", nameA, a.Scenario, a.Started.Format("2006-01-02 15:04"), nameB, b.Scenario, b.Started.Format("2006-01-02 15:04"))
	for _, x := range []struct {
		tag string
		r   *Report
	}{{"A", a}, {"B", b}} {
		if x.r.Partial {
			why := x.r.PartialReason
			if why == "" {
				why = "it did not run to its end"
			}
			ew.printf("warning: %s is a PARTIAL run (%s): its figures cover only part of its plan, so the two are not like for like\n", x.tag, why)
		}
	}
	ew.printf("\n")
	var rows [][]string
	add := func(name string, va, vb *float64, show func(float64) string) {
		sa, sb, delta := "-", "-", ""
		if va != nil {
			sa = show(*va)
		}
		if vb != nil {
			sb = show(*vb)
		}
		if va != nil && vb != nil && *va != 0 {
			delta = percentChange(*va, *vb)
		}
		rows = append(rows, []string{name, sa, sb, delta})
	}
	msf := func(v float64) string { return pct(&v) }
	add("time to queue", a.KPIs.TimeToQueue, b.KPIs.TimeToQueue, span)
	add("time to intent", a.KPIs.TimeToIntent, b.KPIs.TimeToIntent, span)
	add("time to ready", a.KPIs.TimeToReady, b.KPIs.TimeToReady, span)
	add("scale-in", a.KPIs.ScaleIn, b.KPIs.ScaleIn, span)
	add("intent lag", a.KPIs.IntentLag, b.KPIs.IntentLag, span)
	peaks := map[string]bool{}
	for n := range a.KPIs.Peak {
		peaks[n] = true
	}
	for n := range b.KPIs.Peak {
		peaks[n] = true
	}
	names := make([]string, 0, len(peaks))
	for n := range peaks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		va, oka := a.KPIs.Peak[n]
		vb, okb := b.KPIs.Peak[n]
		var pa, pb *float64
		if oka {
			pa = &va
		}
		if okb {
			pb = &vb
		}
		add("peak "+n, pa, pb, num)
	}
	la, lb := a.Load, b.Load
	add("requests", fptr(float64(la.Requests)), fptr(float64(lb.Requests)), num)
	add("error rate", fptr(100*la.ErrorRate), fptr(100*lb.ErrorRate), func(v float64) string { return fmt.Sprintf("%.2f%%", v) })
	add("achieved rps", fptr(la.AchievedRPS), fptr(lb.AchievedRPS), num)
	add("output tok/s", fptr(la.OutputTPS), fptr(lb.OutputTPS), num)
	for _, m := range []struct {
		name string
		of   func(LoadReport) *float64
	}{
		{"ttft p50", func(l LoadReport) *float64 { return l.TTFT.P50 }},
		{"ttft p95", func(l LoadReport) *float64 { return l.TTFT.P95 }},
		{"ttft p99", func(l LoadReport) *float64 { return l.TTFT.P99 }},
		{"tpot p50", func(l LoadReport) *float64 { return l.TPOT.P50 }},
		{"tpot p95", func(l LoadReport) *float64 { return l.TPOT.P95 }},
		{"itl p50", func(l LoadReport) *float64 { return l.ITL.P50 }},
		{"itl p95", func(l LoadReport) *float64 { return l.ITL.P95 }},
		{"e2e p50", func(l LoadReport) *float64 { return l.E2E.P50 }},
		{"e2e p95", func(l LoadReport) *float64 { return l.E2E.P95 }},
		{"e2e p99", func(l LoadReport) *float64 { return l.E2E.P99 }},
	} {
		add(m.name, m.of(la), m.of(lb), msf)
	}
	if la.Goodput != nil || lb.Goodput != nil {
		g := func(l LoadReport) *float64 {
			if l.Goodput == nil {
				return nil
			}
			return fptr(100 * l.Goodput.Share)
		}
		add("goodput", g(la), g(lb), func(v float64) string { return fmt.Sprintf("%.1f%%", v) })
	}
	verdict := func(r *Report) string {
		if r.Partial {
			return string(r.Verdict) + " (partial)"
		}
		return string(r.Verdict)
	}
	rows = append(rows, []string{"verdict", verdict(a), verdict(b), ""})
	table(ew, []string{"", "A", "B", "B vs A"}, rows, 1)
	return ew.err
}
