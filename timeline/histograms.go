package timeline

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// Histograms is histograms.json: what a report's percentiles were read
// from, in a form that merges exactly. Every latency distribution (TTFT,
// TPOT, ITL, e2e and the send lag, per stage and for the run; TTFT and the
// send lag per timeline row) is an HdrHistogram of microseconds in its V2
// compressed encoding, base64, and the counts beside them are the ones the
// report's figures were computed from. Merging runs (the shards of one run)
// adds the histograms and the counts and computes the percentiles again:
// they are never averaged.
type Histograms struct {
	Version  int    `json:"version"`
	Scenario string `json:"scenario"`
	Unit     string `json:"unit"`     // "us": histogram values are microseconds
	Encoding string `json:"encoding"` // "hdr-v2-base64"
	// Shard says which shard of a sharded run this is; nil for a whole run
	// (and for a merged one).
	Shard *ShardInfo `json:"shard,omitempty"`
	// Expect are the scenario's expectations as written: a merge evaluates
	// them again on the merged report.
	Expect []string     `json:"expect"`
	Run    LoadState    `json:"run"`
	Stages []StageState `json:"stages"`
	Rows   []RowState   `json:"rows"`
}

// HistogramsVersion is histograms.json's version.
const HistogramsVersion = 1

// ShardInfo is one shard's place in a sharded run.
type ShardInfo struct {
	Index   int       `json:"index"` // 0 … count−1
	Count   int       `json:"count"`
	StartAt time.Time `json:"start_at"` // the common start every shard's clock counts from
}

// LoadState is a run's or a stage's load in mergeable form.
type LoadState struct {
	Requests     int64             `json:"requests"`
	OK           int64             `json:"ok"`
	Aborted      int64             `json:"aborted"` // ended by the user (second Ctrl-C)
	Good         int64             `json:"good"`    // met every SLO
	PromptTokens int64             `json:"prompt_tokens"`
	OutputTokens int64             `json:"output_tokens"`
	Errors       map[string]int64  `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	TTFT         string            `json:"ttft"`
	E2E          string            `json:"e2e"`
	ITL          string            `json:"itl"`
	TPOT         string            `json:"tpot"`
	SendLag      string            `json:"send_lag"`
}

// StageState is one stage's load and the requests its schedule had due
// over the time it ran (its achieved and target rates' numerators).
type StageState struct {
	Name    string  `json:"name"`
	Planned float64 `json:"planned"`
	LoadState
}

// RowState is one timeline row's distributions ("" when the row has none)
// and the output tokens that arrived in it.
type RowState struct {
	TTFT    string  `json:"ttft,omitempty"`
	SendLag string  `json:"send_lag,omitempty"`
	Tokens  float64 `json:"tokens"`
}

// state encodes l.
func (l *load) state() LoadState {
	enc := func(d *measure.Dist) string {
		s, _ := d.Encode() // cannot fail: the histogram is well formed
		return s
	}
	return LoadState{Requests: l.requests, OK: l.ok, Aborted: l.aborted, Good: l.good, PromptTokens: l.promptTok, OutputTokens: l.outTok,
		Errors: maps.Clone(l.errors), ErrorSamples: maps.Clone(l.samples),
		TTFT: enc(l.ttft), E2E: enc(l.e2e), ITL: enc(l.itl), TPOT: enc(l.tpot), SendLag: enc(l.lag)}
}

// addState adds a decoded state to l.
func (l *load) addState(s LoadState) error {
	// Its distributions are the decoded ones: none is made to be replaced.
	o := &load{requests: s.Requests, ok: s.OK, aborted: s.Aborted, good: s.Good, promptTok: s.PromptTokens, outTok: s.OutputTokens,
		errors: s.Errors, samples: s.ErrorSamples}
	for _, h := range []struct {
		name string
		enc  string
		into **measure.Dist
	}{{"ttft", s.TTFT, &o.ttft}, {"e2e", s.E2E, &o.e2e}, {"itl", s.ITL, &o.itl}, {"tpot", s.TPOT, &o.tpot}, {"send_lag", s.SendLag, &o.lag}} {
		d, err := measure.DecodeDist(h.enc)
		if err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
		*h.into = d
	}
	l.merge(o)
	return nil
}

// state is the closed row's entry in histograms.json.
func (rw *row) state() RowState {
	enc := func(s measure.Sparse) string {
		if s.Empty() {
			return ""
		}
		e, _ := s.Dist().Encode() // cannot fail: the histogram is well formed
		return e
	}
	return RowState{TTFT: enc(rw.ttftKept), SendLag: enc(rw.lagKept), Tokens: rw.tokens}
}

// addState adds a row's entry in histograms.json to the open row rw: its
// tokens and its distributions.
func (rw *row) addState(s RowState) error {
	rw.tokens += s.Tokens
	for _, h := range []struct {
		name string
		enc  string
		into **measure.Dist
	}{{"ttft", s.TTFT, &rw.ttft}, {"send_lag", s.SendLag, &rw.lag}} {
		if h.enc == "" {
			continue
		}
		d, err := measure.DecodeDist(h.enc)
		if err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
		if d.Count() == 0 {
			continue
		}
		if *h.into == nil {
			*h.into = measure.NewDist(rowDigits)
		}
		(*h.into).Merge(d)
	}
	return nil
}

// Histograms returns the run's distributions and counts (histograms.json).
// Call it once the run is over, after Report: it closes the rows still
// open as Report does.
func (t *Timeline) Histograms(end time.Duration) *Histograms {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeAll()
	loadEnd := t.loadEnd
	if loadEnd < 0 {
		loadEnd = end
	}
	h := &Histograms{Version: HistogramsVersion, Unit: "us", Encoding: "hdr-v2-base64", Expect: []string{}}
	for _, st := range t.stages {
		ss := StageState{Name: st.plan.Name, LoadState: st.load.state()}
		if st.started {
			ss.Planned = st.plan.planned(st.endOr(loadEnd) - st.start)
		}
		h.Stages = append(h.Stages, ss)
	}
	h.Run = t.total().state()
	for _, rw := range t.rows {
		h.Rows = append(h.Rows, rw.state())
	}
	return h
}

// WriteHistograms writes histograms.json.
func WriteHistograms(w io.Writer, h *Histograms) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(h)
}

// ReadHistograms reads histograms.json.
func ReadHistograms(rd io.Reader) (*Histograms, error) {
	var h Histograms
	if err := json.NewDecoder(rd).Decode(&h); err != nil {
		return nil, err
	}
	if h.Version != HistogramsVersion || h.Encoding != "hdr-v2-base64" || h.Unit != "us" {
		return nil, fmt.Errorf("version %d, encoding %q, unit %q: want version %d, hdr-v2-base64, us", h.Version, h.Encoding, h.Unit, HistogramsVersion)
	}
	return &h, nil
}

// Part is one of the runs Merge joins: its report and histograms, and
// what the merged report calls it ("shard 1/4"; "" for "part I").
type Part struct {
	Report     *Report
	Histograms *Histograms
	Label      string
}

func (p Part) label(i int) string {
	if p.Label != "" {
		return p.Label
	}
	return fmt.Sprintf("part %d", i)
}

// Merge joins the shards of one run, all on one clock (their common start),
// into one report and its histograms. The first part is the one whose
// observation the merged run keeps: its series, events, KPIs, baseline and
// guard (every shard samples the same series; the first also guarded).
// The load is the parts' summed: counts and tokens added, every latency
// distribution merged from the histograms and its percentiles read again,
// the timeline's rows added row by row, the planned requests added. The
// expectations, the client's self-check and the verdict are left to the
// caller (Expectations empty, Verdict None): they are decided on the merged
// report. The parts must share the interval and the stages (Merge says
// which differs).
func Merge(parts []Part) (*Report, *Histograms, error) {
	if len(parts) == 0 {
		return nil, nil, fmt.Errorf("nothing to merge")
	}
	first := parts[0].Report
	for i, p := range parts {
		r, h := p.Report, p.Histograms
		if r.IntervalS != first.IntervalS {
			return nil, nil, fmt.Errorf("part %d: interval %gs, the first part's is %gs", i, r.IntervalS, first.IntervalS)
		}
		if len(r.Stages) != len(first.Stages) || len(h.Stages) != len(first.Stages) {
			return nil, nil, fmt.Errorf("part %d: %d stages (%d in its histograms), the first part has %d", i, len(r.Stages), len(h.Stages), len(first.Stages))
		}
		for j := range r.Stages {
			if r.Stages[j].Name != first.Stages[j].Name || h.Stages[j].Name != first.Stages[j].Name {
				return nil, nil, fmt.Errorf("part %d: stage %d is %q, the first part's is %q", i, j, r.Stages[j].Name, first.Stages[j].Name)
			}
		}
	}
	slo := sloOf(first.Load.Goodput)
	interval := time.Duration(first.IntervalS * float64(time.Second))

	m := &Report{Version: ReportVersion, Scenario: first.Scenario, File: first.File, Started: first.Started,
		Target: first.Target, IntervalS: first.IntervalS, Threshold: first.Threshold, Series: first.Series,
		Events: slices.Clone(first.Events), KPIs: first.KPIs, Expectations: []Outcome{}, Verdict: None,
		Guard: first.Guard, Baseline: first.Baseline, Notes: slices.Clone(first.Notes)}
	mh := &Histograms{Version: HistogramsVersion, Scenario: parts[0].Histograms.Scenario, Unit: "us", Encoding: "hdr-v2-base64",
		Expect: parts[0].Histograms.Expect}
	var reasons []string
	var loadS float64
	var lines int64
	allLines := true
	for i, p := range parts {
		r := p.Report
		m.DurationS = max(m.DurationS, r.DurationS)
		loadS = max(loadS, r.Load.LoadS)
		if r.Started.Before(m.Started) {
			m.Started = r.Started
		}
		if r.Partial {
			m.Partial = true
			reasons = append(reasons, p.label(i)+": "+r.PartialReason)
		}
		m.MaxInFlightCap += r.MaxInFlightCap
		if r.RequestsJSONL != nil {
			lines += *r.RequestsJSONL
		} else {
			allLines = false
		}
		if i > 0 {
			for _, n := range r.Notes {
				m.Notes = append(m.Notes, p.label(i)+": "+n)
			}
			for _, e := range r.Events {
				if e.Kind == CapReached { // the one event a part's own load brings
					e.Text = p.label(i) + ": " + e.Text
					m.Events = append(m.Events, e)
				}
			}
		}
	}
	m.PartialReason = strings.Join(reasons, "; ")
	if allLines {
		m.RequestsJSONL = &lines
	}
	slices.SortStableFunc(m.Events, func(a, b Event) int {
		switch {
		case a.T < b.T:
			return -1
		case a.T > b.T:
			return 1
		}
		return 0
	})

	// Stages and the run: counts and distributions added, figures again.
	all := newLoad()
	var plannedAll float64
	for j, fs := range first.Stages {
		sr := StageReport{Name: fs.Name, Plan: fs.Plan, PlannedS: fs.PlannedS, EndedBy: fs.EndedBy, StartS: fs.StartS, EndS: fs.EndS}
		st := newLoad()
		var planned float64
		var client *ClientUse
		for i, p := range parts {
			ps := p.Report.Stages[j]
			if err := st.addState(p.Histograms.Stages[j].LoadState); err != nil {
				return nil, nil, fmt.Errorf("part %d: stage %s: %w", i, fs.Name, err)
			}
			planned += p.Histograms.Stages[j].Planned
			if ps.EndedBy != NotStarted {
				if sr.EndedBy == NotStarted {
					sr.EndedBy, sr.StartS, sr.EndS = ps.EndedBy, ps.StartS, ps.EndS
				}
				sr.StartS, sr.EndS = min(sr.StartS, ps.StartS), max(sr.EndS, ps.EndS)
			}
			sr.Concurrency += ps.Concurrency
			sr.Workers += ps.Workers
			if c := ps.Client; c != nil {
				if client == nil {
					client = &ClientUse{}
				}
				client.CPUSeconds = Round3(client.CPUSeconds + c.CPUSeconds)
				client.CPUCores = Round3(client.CPUCores + c.CPUCores)
				client.Cores += c.Cores
				client.RSSMB = Round3(client.RSSMB + c.RSSMB)
				client.CapReached += c.CapReached
			}
		}
		mh.Stages = append(mh.Stages, StageState{Name: fs.Name, Planned: planned, LoadState: st.state()})
		all.merge(st)
		span := time.Duration((sr.EndS - sr.StartS) * float64(time.Second))
		if sr.EndedBy != NotStarted {
			plannedAll += planned
			sr.LoadReport = st.report(span, planned, slo)
		}
		sr.Client = client
		m.Stages = append(m.Stages, sr)
	}
	for i, p := range parts { // requests of no known stage would be lost: refuse them
		n := p.Histograms.Run.Requests
		for _, st := range p.Histograms.Stages {
			n -= st.Requests
		}
		if n != 0 {
			return nil, nil, fmt.Errorf("part %d: its run holds %d requests its stages do not", i, n)
		}
	}
	mh.Run = all.state()
	m.Load = all.report(time.Duration(loadS*float64(time.Second)), plannedAll, slo)
	var peak int64
	for _, p := range parts {
		m.Load.CapReached += p.Report.Load.CapReached
		if v := p.Report.Load.MaxInFlight; v != nil {
			peak = max(peak, *v)
		}
	}

	// Rows: added on the common clock, each row's distributions merged,
	// and its figures computed as the timeline computes a row's.
	n := 0
	for _, p := range parts {
		n = max(n, len(p.Report.Timeline), len(p.Histograms.Rows))
	}
	end := time.Duration(m.DurationS * float64(time.Second))
	var inflight int64
	for i := range n {
		rw := &row{}
		var target float64
		stage := "-"
		if i < len(first.Timeline) {
			stage = first.Timeline[i].Stage
		}
		for k, p := range parts {
			if i < len(p.Report.Timeline) {
				pr := p.Report.Timeline[i]
				rw.sent += pr.Sent
				rw.done += pr.Done
				rw.errs += pr.Errors
				rw.aborted += pr.Aborted
				rw.capped = rw.capped || pr.Capped
				target += pr.TargetRPS
				if stage == "-" {
					stage = pr.Stage
				}
			}
			if i < len(p.Histograms.Rows) {
				if err := rw.addState(p.Histograms.Rows[i]); err != nil {
					return nil, nil, fmt.Errorf("part %d: row %d: %w", k, i, err)
				}
			}
		}
		rw.close(func(*measure.Dist) {})
		row := rw.report(rowSpan(i, interval, end))
		row.Stage, row.TargetRPS = stage, Round3(target)
		if i < len(first.Timeline) {
			fr := first.Timeline[i]
			row.SampleT, row.Series, row.Gaps = fr.SampleT, fr.Series, fr.Gaps
		} else {
			for _, s := range first.Series {
				row.Series[s.Name] = nil
			}
		}
		inflight += rw.net()
		row.InFlight = inflight
		peak = max(peak, inflight)
		m.Timeline = append(m.Timeline, row)
		mh.Rows = append(mh.Rows, rw.state())
	}
	m.Load.MaxInFlight = &peak
	return m, mh, nil
}

// sloOf reads the SLO back from a report's goodput (zero without one).
func sloOf(g *Goodput) SLO {
	var s SLO
	if g == nil {
		return s
	}
	d := func(name string) time.Duration {
		return time.Duration(g.SLO[name] * float64(time.Millisecond))
	}
	s.TTFT, s.TPOT, s.E2E = d("ttft"), d("tpot"), d("e2e")
	return s
}
