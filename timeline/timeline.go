package timeline

import (
	"fmt"
	"maps"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
)

// replicaSeries are the series whose every change is an event.
var replicaSeries = map[string]bool{platform.Desired: true, platform.Current: true, platform.Ready: true}

// Config says what the timeline is made of.
type Config struct {
	Interval  time.Duration
	Series    []measure.Series
	Stages    []StagePlan
	Threshold float64 // queued requests per replica (the waiting crossing)
	SLO       SLO
	// Grace is how long the observed desired may stay below the predicted
	// one before that is an event: one HPA sync plus one sample (0: 15 s
	// plus the interval).
	Grace time.Duration
	// Baseline is the fleet before the load (nil: none was read): the
	// series start from its values, and the waiting crossing from its
	// queue.
	Baseline *Baseline
}

// SLO are per-request objectives for goodput; zero fields are not checked.
type SLO struct {
	TTFT, TPOT, E2E time.Duration
}

func (s SLO) set() bool { return s.TTFT > 0 || s.TPOT > 0 || s.E2E > 0 }

// StagePlan is what a stage was asked to do.
type StagePlan struct {
	Name        string
	Plan        string // printed form, e.g. "ramp 1/s→12/s for 2m"
	Duration    time.Duration
	RateFrom    float64
	RateTo      float64
	Concurrency int
	// Due counts the requests the stage's schedule had due in its first d
	// (its actual arrivals: a Poisson count varies around the rate's
	// integral). Nil: the integral of the rate.
	Due func(d time.Duration) float64
}

// RateAt is the planned rate at offset t into the stage: the ramp from
// RateFrom to RateTo, 0 under concurrency.
func (p StagePlan) RateAt(t time.Duration) float64 {
	if p.Concurrency > 0 || p.Duration <= 0 {
		return 0
	}
	f := min(max(t.Seconds()/p.Duration.Seconds(), 0), 1)
	return p.RateFrom + (p.RateTo-p.RateFrom)*f
}

// planned is the number of requests the schedule asks for in the first t.
func (p StagePlan) planned(t time.Duration) float64 {
	if p.Concurrency > 0 || p.Duration <= 0 {
		return 0
	}
	if p.Due != nil {
		return p.Due(t)
	}
	s, d := min(t, p.Duration).Seconds(), p.Duration.Seconds()
	return p.RateFrom*s + (p.RateTo-p.RateFrom)*s*s/(2*d)
}

// lateWindow is how long after a row ends a request may still add its
// first token to the row. Older rows are closed: their distributions are
// reduced to the percentiles shown and their memory is used again, so a
// long run keeps a bounded number of open rows.
const lateWindow = 2 * time.Minute

// Timeline accumulates a run. It is safe for concurrent use: requests
// arrive from the recorder, samples from the watcher, stage changes from
// the run loop.
type Timeline struct {
	mu  sync.Mutex
	cfg Config
	idx map[string]int // series name → index in samples

	rows    []*row
	closed  int // rows before this index are closed
	free    []*measure.Dist
	run     *load
	stages  []*stageState
	events  []Event
	loadEnd time.Duration // when the load stopped; -1 while it runs
	maxDone time.Duration
	capTold bool // the max_in_flight event has been added

	// sample state, in sample order
	known       []*stamp // each series' last value and its sample's offset, across gaps; nil before the first
	start       map[string]float64
	peak        map[string]float64
	peakAt      map[string]float64
	above       bool // waiting is above threshold × replicas
	predictedAt *float64
	preds       []stamp       // the predictions of the last grace period
	behind      time.Duration // when the prediction desired has not reached was made; -1 when none
	behindTold  bool          // the lag has been reported as an event
	gapReason   []string
	kpi         KPIs
	latest      measure.Sample
}

type stageState struct {
	plan    StagePlan
	start   time.Duration
	end     time.Duration
	started bool
	endedBy EndedBy
	load    *load
	// inFlight is the most requests in flight the run saw at an instant
	// of the stage (its start, its end, the client's peak when it rose
	// during the stage); -1 when it told none.
	inFlight int64
}

// endOr is when the stage ended: loadEnd when it had not ended by then
// (the load stopped in it).
func (st *stageState) endOr(loadEnd time.Duration) time.Duration {
	if st.end < 0 {
		return loadEnd
	}
	return st.end
}

type row struct {
	sent, done, errs  int64
	aborted           int64 // ended by the user (second Ctrl-C): neither done nor failed
	tokens            float64
	ttft              *measure.Dist
	lag               *measure.Dist
	ttftP50, ttftP95  *float64
	lagP50, lagP99    *float64
	lagMax            *float64
	ttftKept, lagKept measure.Sparse // the closed distributions, for histograms.json
	sample            *measure.Sample
	capped            bool
}

// New returns an empty timeline.
func New(cfg Config) *Timeline {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 15*time.Second + cfg.Interval
	}
	t := &Timeline{
		cfg: cfg, idx: map[string]int{}, run: newLoad(), loadEnd: -1,
		start: map[string]float64{}, peak: map[string]float64{}, peakAt: map[string]float64{}, behind: -1,
		gapReason: make([]string, len(cfg.Series)), known: make([]*stamp, len(cfg.Series)),
	}
	for i, s := range cfg.Series {
		t.idx[s.Name] = i
	}
	for _, p := range cfg.Stages {
		t.stages = append(t.stages, &stageState{plan: p, load: newLoad(), inFlight: -1})
	}
	if b := cfg.Baseline; b != nil {
		for name, v := range b.Values {
			if v != nil {
				t.start[name] = *v
			}
		}
		get := func(name string) (float64, bool) {
			if v := b.Values[name]; v != nil {
				return *v, true
			}
			return 0, false
		}
		if w, ok := get(platform.Waiting); ok {
			limit, _ := t.queueLimit(get)
			t.above = w > limit
		}
	}
	return t
}

// queueLimit is where waiting crosses: threshold × replicas (current, else
// ready, else 1).
func (t *Timeline) queueLimit(get func(string) (float64, bool)) (limit, reps float64) {
	reps = 1
	if c, ok := get(platform.Current); ok && c > 0 {
		reps = c
	} else if r, ok := get(platform.Ready); ok && r > 0 {
		reps = r
	}
	return t.cfg.Threshold * reps, reps
}

// before is the value a series had before the load, which an event-like
// expectation must not count (see Expectation): the baseline's, else the
// series' first value. applies is false when no baseline was read.
func (t *Timeline) before(name string) (v float64, known, applies bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, known = t.start[name]
	return v, known, t.cfg.Baseline != nil
}

func (t *Timeline) rowAt(at time.Duration) *row {
	if at < 0 {
		at = 0
	}
	i := int(at / t.cfg.Interval)
	for len(t.rows) <= i {
		t.rows = append(t.rows, &row{})
	}
	return t.rows[i]
}

func (t *Timeline) open(at time.Duration) bool {
	return int(max(at, 0)/t.cfg.Interval) >= t.closed
}

func (t *Timeline) dist() *measure.Dist {
	if n := len(t.free); n > 0 {
		d := t.free[n-1]
		t.free = t.free[:n-1]
		return d
	}
	return measure.NewDist(rowDigits)
}

// rowDigits is the precision of a row's distributions (significant
// digits): a row shows two percentiles, not the stages' full detail.
const rowDigits = 2

// AddRequest adds one finished request.
func (t *Timeline) AddRequest(r *measure.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Each request is counted once, in its stage; the run's figures are the
	// stages' merged in Report (t.run keeps only requests of no known stage).
	if r.Stage >= 0 && r.Stage < len(t.stages) {
		t.stages[r.Stage].load.add(r, t.cfg.SLO)
	} else {
		t.run.add(r, t.cfg.SLO)
	}
	done := r.Done()
	sr := t.rowAt(r.Sent)
	sr.sent++
	if r.Scheduled >= 0 && t.open(r.Sent) {
		if sr.lag == nil {
			sr.lag = t.dist()
		}
		sr.lag.Add(r.Lag())
	}
	rw := t.rowAt(done)
	switch {
	case r.Class == measure.Canceled:
		rw.aborted++
	case r.Failed():
		rw.done++
		rw.errs++
	default:
		rw.done++
	}
	if r.TTFT > 0 && t.open(r.Sent+r.TTFT) {
		fr := t.rowAt(r.Sent + r.TTFT)
		if fr.ttft == nil {
			fr.ttft = t.dist()
		}
		fr.ttft.Add(r.TTFT)
	}
	if r.OutputTokens > 0 {
		from := r.Sent + r.TTFT
		if r.TTFT <= 0 {
			from = done // not streamed: every token arrives with the body
		}
		t.spread(float64(r.OutputTokens), from, done)
	}
	if done > t.maxDone {
		t.maxDone = done
		t.closeBefore(done - lateWindow)
	}
}

// spread adds n tokens evenly over [from, to] to the rows they fall in.
func (t *Timeline) spread(n float64, from, to time.Duration) {
	if to <= from {
		t.rowAt(to).tokens += n
		return
	}
	iv := t.cfg.Interval
	span := float64(to - from)
	for a := from; a < to; {
		b := min((a/iv+1)*iv, to)
		t.rowAt(a).tokens += n * float64(b-a) / span
		a = b
	}
}

// closeBefore closes the rows that end before at.
func (t *Timeline) closeBefore(at time.Duration) {
	for t.closed < len(t.rows) && time.Duration(t.closed+1)*t.cfg.Interval <= at {
		t.closeRow(t.rows[t.closed])
		t.closed++
	}
}

func (t *Timeline) closeRow(rw *row) {
	rw.close(func(d *measure.Dist) {
		d.Reset()
		t.free = append(t.free, d)
	})
}

// closeAll closes the rows still open (the run is over).
func (t *Timeline) closeAll() {
	for _, rw := range t.rows[t.closed:] {
		t.closeRow(rw)
	}
	t.closed = len(t.rows)
}

// close reduces the row's distributions to the percentiles the report
// shows, keeps a sparse copy of each for histograms.json, and hands each
// distribution to done (which may use its memory again).
func (rw *row) close(done func(*measure.Dist)) {
	if rw.ttft != nil {
		rw.ttftP50, rw.ttftP95 = ms(rw.ttft.Quantile(.5)), ms(rw.ttft.Quantile(.95))
		rw.ttftKept = rw.ttft.Sparse()
		done(rw.ttft)
		rw.ttft = nil
	}
	if rw.lag != nil {
		rw.lagP50, rw.lagP99, rw.lagMax = ms(rw.lag.Quantile(.5)), ms(rw.lag.Quantile(.99)), ms(rw.lag.Max())
		rw.lagKept = rw.lag.Sparse()
		done(rw.lag)
		rw.lag = nil
	}
}

// net is how many requests the row added to those in flight: sent, less
// those that ended in it.
func (rw *row) net() int64 { return rw.sent - rw.done - rw.aborted }

// rowSpan is where row i starts and ends: an interval, the run's last row
// cut at the run's end (never empty).
func rowSpan(i int, interval, end time.Duration) (at, rowEnd time.Duration) {
	at = time.Duration(i) * interval
	return at, min(at+interval, max(end, at+1))
}

// report is the closed row as report.json shows it, from [at, rowEnd):
// its counts, percentiles and output rate. Its stage, target rate, in
// flight and series are the run's to say.
func (rw *row) report(at, rowEnd time.Duration) Row {
	return Row{T: secs(at), Span: secs(rowEnd - at), Sent: rw.sent, Done: rw.done, Errors: rw.errs, Aborted: rw.aborted,
		TTFTP50: rw.ttftP50, TTFTP95: rw.ttftP95, LagP50: rw.lagP50, LagP99: rw.lagP99, LagMax: rw.lagMax, Capped: rw.capped,
		OutputTPS: Round3(rw.tokens / (rowEnd - at).Seconds()), Series: map[string]*float64{}}
}

func ms(d time.Duration) *float64 {
	v := math.Round(float64(d)/float64(time.Microsecond)) / 1000
	return &v
}

func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

func fptr(v float64) *float64 { return &v }

// StageStarted marks stage i as begun at offset at.
func (t *Timeline) StageStarted(i int, at time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stages[i]
	st.start, st.started, st.end = at, true, -1
	t.events = append(t.events, Event{T: secs(at), Kind: StageStart, Text: "stage " + st.plan.Name + " (" + st.plan.Plan + ")"})
}

// StageEnded marks stage i as over at offset at; by says why (duration,
// until, interrupt).
func (t *Timeline) StageEnded(i int, at time.Duration, by EndedBy) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stages[i]
	st.end, st.endedBy = at, by
	text := "stage " + st.plan.Name + " ended"
	if by != ByDuration {
		text += " (" + string(by) + ")"
	}
	t.events = append(t.events, Event{T: secs(at), Kind: StageEnd, Text: text})
}

// StageInFlight tells stage i's timeline that n requests were in flight
// at one instant of the stage (the run tells it once, at the stage's end:
// the client's peak when it rose during the stage, else the more of the
// counts at the stage's start and end). A stage's
// max_in_flight is the most of these and of the in-flight counts at the
// ends of the rows within it.
func (t *Timeline) StageInFlight(i int, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.stages[i]; n > st.inFlight {
		st.inFlight = n
	}
}

// LoadStopped marks the end of all load.
func (t *Timeline) LoadStopped(at time.Duration, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.loadEnd = at
	text := "load stopped"
	if why != "" {
		text += " (" + why + ")"
	}
	t.events = append(t.events, Event{T: secs(at), Kind: LoadStop, Text: text})
}

// Capped notes that sends were held back by max_in_flight around at.
func (t *Timeline) Capped(at time.Duration, cap int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.capTold {
		t.capTold = true
		t.events = append(t.events, Event{T: secs(at), Kind: CapReached,
			Text: fmt.Sprintf("max_in_flight %d reached: sends are held back, the offered rate falls short", cap)})
	}
	t.rowAt(at).capped = true
}

// Add records a free-form event.
func (t *Timeline) Add(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, e)
}

// Latest returns the most recent sample (for live progress).
func (t *Timeline) Latest() measure.Sample {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.latest
}

// ValueIn returns a series' value in s, a sample of this timeline (read
// once with Latest, it gives every series at the same instant); false
// when the series is not observed or s holds no values yet. It takes no
// lock: the series and their order are fixed by New.
func (t *Timeline) ValueIn(s measure.Sample, name string) (measure.Value, bool) {
	i, ok := t.idx[name]
	if !ok || i >= len(s.Values) {
		return measure.Value{}, false
	}
	return s.Values[i], true
}

// AddSample adds one sample; samples must arrive in time order.
func (t *Timeline) AddSample(s measure.Sample) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.Values = append([]measure.Value(nil), s.Values...)
	t.latest = s
	kept := s
	t.rowAt(s.At).sample = &kept
	t.events = append(t.events, t.sampleEvents(s)...)
	if s.At > t.maxDone {
		t.closeBefore(s.At - lateWindow)
	}
}

func (t *Timeline) val(vals []measure.Value, name string) (float64, bool) {
	i, ok := t.idx[name]
	if !ok || i >= len(vals) || !vals[i].OK() {
		return 0, false
	}
	return vals[i].V, true
}

// sampleEvents derives the events one sample brings and advances the KPIs.
func (t *Timeline) sampleEvents(s measure.Sample) []Event {
	var evs []Event
	at := secs(s.At)
	afterLoad := t.loadEnd >= 0 && s.At >= t.loadEnd
	// Gaps: one event per reason for the series that lost (or regained)
	// their value in this sample. The maps are made only when needed: most
	// samples have no gap to tell.
	var lost map[string][]string
	var back []string
	// since[name] is set when a series is back from a gap: the offset of its
	// last value before it. What changed in the gap changed somewhere
	// between then and now, and the events and KPIs say so.
	var since map[string]float64
	for i, ser := range t.cfg.Series {
		v := s.Values[i]
		switch {
		case !v.OK() && t.gapReason[i] != v.Gap:
			if lost == nil {
				lost = map[string][]string{}
			}
			lost[v.Gap] = append(lost[v.Gap], ser.Name)
		case v.OK() && t.gapReason[i] != "":
			back = append(back, ser.Name)
			if last := t.known[i]; last != nil {
				if since == nil {
					since = map[string]float64{}
				}
				since[ser.Name] = secs(last.at)
			}
		}
		t.gapReason[i] = v.Gap
	}
	reasons := make([]string, 0, len(lost))
	for r := range lost {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		evs = append(evs, Event{T: at, Kind: GapStart, Series: strings.Join(lost[r], ","),
			Text: fmt.Sprintf("no value for %s: %s", strings.Join(lost[r], ", "), r)})
	}
	if len(back) > 0 {
		evs = append(evs, Event{T: at, Kind: GapEnd, Series: strings.Join(back, ","),
			Text: strings.Join(back, ", ") + " back"})
	}
	for i, ser := range t.cfg.Series {
		v := s.Values[i]
		if !v.OK() {
			continue
		}
		if _, ok := t.start[ser.Name]; !ok {
			t.start[ser.Name] = v.V
		}
		if p, ok := t.peak[ser.Name]; !ok || v.V > p {
			t.peak[ser.Name], t.peakAt[ser.Name] = v.V, at
		}
		if prev := t.known[i]; replicaSeries[ser.Name] && prev != nil && prev.v != v.V {
			ev := Event{T: at, Kind: Change, Series: ser.Name, From: fptr(prev.v), To: fptr(v.V),
				Text: fmt.Sprintf("%s %s→%s", ser.Name, num(prev.v), num(v.V))}
			if from, ok := since[ser.Name]; ok {
				ev.Since = fptr(from)
				ev.Text += fmt.Sprintf(" (some time in the gap after %s)", Clock(from))
			}
			evs = append(evs, ev)
			if ser.Name == platform.Desired && v.V < prev.v && !afterLoad {
				t.kpi.FallsInLoad++
				if t.kpi.FallsInLoad == 1 {
					evs = append(evs, Event{T: at, Kind: Note, Series: platform.Desired,
						Text: "desired fell while the load still ran: a queue-depth trigger scales in once the queue drains, even under steady load (a KV-cache trigger or a longer scale-down window holds the replicas)"})
				}
			}
		}
		t.known[i] = &stamp{s.At, v.V}
	}
	// The waiting crossing: above threshold × replicas (current, else ready, else 1).
	if w, ok := t.val(s.Values, platform.Waiting); ok {
		limit, reps := t.queueLimit(func(name string) (float64, bool) { return t.val(s.Values, name) })
		switch {
		case w > limit && !t.above:
			t.above = true
			evs = append(evs, Event{T: at, Kind: Crossing, Series: platform.Waiting, To: fptr(w),
				Text: fmt.Sprintf("waiting %s > %s (%s × %s)", num(w), num(limit), num(t.cfg.Threshold), plural(reps, "replica"))})
			if t.kpi.TimeToQueue == nil && !afterLoad {
				t.kpi.TimeToQueue = t.reached(kpiTimeToQueue, at, since, platform.Waiting, 0)
			}
		case w <= limit && t.above:
			t.above = false
			evs = append(evs, Event{T: at, Kind: Crossing, Series: platform.Waiting, To: fptr(w),
				Text: fmt.Sprintf("waiting %s ≤ %s", num(w), num(limit))})
		}
	}
	// When the prediction first asked for more than desired started at.
	if p, ok := t.val(s.Values, platform.Predicted); ok && t.predictedAt == nil {
		if st, ok := t.start[platform.Desired]; ok && p > st {
			t.predictedAt = fptr(at)
		}
	}
	evs = append(evs, t.divergence(s)...)
	// KPIs on the replica series.
	if d, ok := t.val(s.Values, platform.Desired); ok {
		st := t.start[platform.Desired]
		if t.kpi.TimeToIntent == nil && d > st {
			t.kpi.TimeToIntent = t.reached(kpiTimeToIntent, at, since, platform.Desired, 0)
		}
		if afterLoad && t.kpi.ScaleIn == nil && t.kpi.TimeToIntent != nil && d <= st {
			t.kpi.ScaleIn = t.reached(kpiScaleIn, at, since, platform.Desired, secs(t.loadEnd))
		}
	}
	if r, ok := t.val(s.Values, platform.Ready); ok {
		st := t.start[platform.Ready]
		if t.kpi.TimeToReady == nil && r > st {
			t.kpi.TimeToReady = t.reached(kpiTimeToReady, at, since, platform.Ready, 0)
		}
		if afterLoad && t.kpi.ReadyIn == nil && t.kpi.TimeToReady != nil && r <= st {
			t.kpi.ReadyIn = t.reached(kpiReadyIn, at, since, platform.Ready, secs(t.loadEnd))
		}
	}
	return evs
}

// reached returns a KPI first seen at `at` (seconds), measured from
// `from`. When the series it reads is back from a gap in this sample, the
// moment lies between its last value and now: the KPI keeps the time it
// was seen and Earliest keeps the lower bound.
func (t *Timeline) reached(key string, at float64, since map[string]float64, series string, from float64) *float64 {
	if low, ok := since[series]; ok {
		if t.kpi.Earliest == nil {
			t.kpi.Earliest = map[string]float64{}
		}
		t.kpi.Earliest[key] = Round3(max(low-from, 0))
	}
	return fptr(Round3(at - from))
}

// divergence follows the observed desired against the predicted one. A
// prediction made at t should be reached by t + grace (one HPA sync plus
// one sample): an event when desired is still below it then, and one when
// it catches up. Only a desired below the prediction counts: above it is
// the scale-down stabilization holding replicas, which is by design. While
// the queue keeps growing the newest prediction is always a step ahead of
// the last sync, so desired is compared with the prediction of one grace
// ago, not the newest (or a lower one made since).
func (t *Timeline) divergence(s measure.Sample) []Event {
	if p, ok := t.val(s.Values, platform.Predicted); ok {
		t.preds = append(t.preds, stamp{s.At, p})
	}
	d, okD := t.val(s.Values, platform.Desired)
	if !okD {
		return nil
	}
	// The prediction of one grace ago: the latest one made no later than
	// s.At − grace. Older ones are no longer needed.
	cut := s.At - t.cfg.Grace
	i := 0
	for i+1 < len(t.preds) && t.preds[i+1].at <= cut {
		i++
	}
	t.preds = t.preds[i:]
	if len(t.preds) == 0 || t.preds[0].at > cut {
		return nil
	}
	// The lowest prediction since then: a controller that followed a
	// falling prediction down (the stabilized one falls when its window
	// ends) is where it should be, not behind the higher one before it.
	// It is due since the older one was made.
	due := t.preds[0]
	for _, p := range t.preds[1:] {
		due.v = min(due.v, p.v)
	}
	at := secs(s.At)
	if d < due.v {
		if t.behind < 0 {
			t.behind = due.at
		}
		if !t.behindTold {
			t.behindTold = true
			return []Event{{T: at, Kind: Divergence, Series: platform.Desired, From: fptr(d), To: fptr(due.v),
				Text: fmt.Sprintf("desired %s has not reached %s, predicted at %s, within %s (one HPA sync plus one sample)",
					num(d), num(due.v), Clock(secs(due.at)), span(t.cfg.Grace.Seconds()))}}
		}
		return nil
	}
	var evs []Event
	if t.behindTold {
		evs = append(evs, Event{T: at, Kind: Divergence, Series: platform.Desired, To: fptr(d),
			Text: fmt.Sprintf("desired caught up with the prediction %s after it was made", span((s.At - t.behind).Seconds()))})
	}
	t.behind, t.behindTold = -1, false
	return evs
}

// stamp is a value at an offset.
type stamp struct {
	at time.Duration
	v  float64
}

// ScaledIn reports whether every replica series that rose is back at its
// starting value after the load: the run has seen what it came for.
func (t *Timeline) ScaledIn() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.loadEnd < 0 || t.kpi.TimeToIntent == nil && t.kpi.TimeToReady == nil {
		return false
	}
	for i, s := range t.cfg.Series {
		if !replicaSeries[s.Name] {
			continue
		}
		v, st := t.known[i], t.start[s.Name]
		if v == nil || v.v > st || t.gapReason[i] != "" {
			return false
		}
	}
	return t.latest.At >= t.loadEnd
}

// Idle reports whether, after the load, nothing rose and nothing is queued
// above the threshold: there is no scale-in to wait for.
func (t *Timeline) Idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.loadEnd >= 0 && t.latest.At >= t.loadEnd && t.kpi.TimeToIntent == nil && t.kpi.TimeToReady == nil && !t.above
}

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	if math.Abs(v) < 10 {
		return trimZeros(fmt.Sprintf("%.2f", v))
	}
	return trimZeros(fmt.Sprintf("%.1f", v))
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func plural(n float64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return num(n) + " " + word + "s"
}

// Meta is what the report says about the run besides its measurements.
type Meta struct {
	Scenario      string
	File          string
	Started       time.Time
	Target        TargetInfo
	Partial       bool
	PartialReason string
	CapReached    int64
	PeakInFlight  int64 // the most requests in flight at once (0: take the rows' ends)
	MaxInFlight   int   // the max_in_flight cap the run had
	Notes         []string
}

// Report closes the timeline at end (the run's last offset) and builds
// the report. It can be called once the run is over.
func (t *Timeline) Report(end time.Duration, m Meta) *Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	loadEnd := t.loadEnd
	if loadEnd < 0 {
		loadEnd = end
	}
	t.rowAt(max(end-1, 0)) // rows reach the end of the run
	t.closeAll()

	r := &Report{
		Version: ReportVersion, Scenario: m.Scenario, File: m.File, Started: m.Started.UTC(),
		DurationS: secs(end), Partial: m.Partial, PartialReason: m.PartialReason, Target: m.Target,
		IntervalS: secs(t.cfg.Interval), Threshold: t.cfg.Threshold, Verdict: None,
		Notes: m.Notes, Expectations: []Outcome{}, Baseline: t.cfg.Baseline,
	}
	for _, s := range t.cfg.Series {
		r.Series = append(r.Series, SeriesInfo{Name: s.Name, Query: s.Query, Source: s.Source})
	}

	// In flight at each row's end: what is sent and not yet over.
	ends := make([]int64, len(t.rows))
	var inflight int64
	for i, rw := range t.rows {
		inflight += rw.net()
		ends[i] = inflight
	}

	// Stages.
	var plannedAll float64
	for _, st := range t.stages {
		sr := StageReport{Name: st.plan.Name, Plan: st.plan.Plan, PlannedS: secs(st.plan.Duration), EndedBy: st.endedBy}
		if !st.started {
			sr.EndedBy = NotStarted
			r.Stages = append(r.Stages, sr)
			continue
		}
		stEnd := st.endOr(loadEnd)
		if st.end < 0 && sr.EndedBy == "" {
			sr.EndedBy = ByInterrupt
		}
		sr.StartS, sr.EndS = secs(st.start), secs(stEnd)
		planned := st.plan.planned(stEnd - st.start)
		plannedAll += planned
		sr.LoadReport = st.load.report(stEnd-st.start, planned, t.cfg.SLO)
		peak := st.inFlight // -1: nothing told
		for i, n := range ends {
			if rowEnd := time.Duration(i+1) * t.cfg.Interval; rowEnd > st.start && rowEnd <= stEnd {
				peak = max(peak, n)
			}
		}
		if peak >= 0 {
			sr.MaxInFlight = &peak
		}
		r.Stages = append(r.Stages, sr)
	}
	r.Load = t.total().report(loadEnd, plannedAll, t.cfg.SLO)
	r.Load.CapReached = m.CapReached
	r.MaxInFlightCap = m.MaxInFlight

	// Rows.
	r.Load.MaxInFlight = new(int64(0))
	for i, rw := range t.rows {
		at, rowEnd := rowSpan(i, t.cfg.Interval, end)
		row := rw.report(at, rowEnd)
		row.InFlight = ends[i]
		if ends[i] > *r.Load.MaxInFlight {
			*r.Load.MaxInFlight = ends[i]
		}
		// The row's stage is the one running at its start; its planned
		// rate is the one at the middle of the row's part of that stage.
		row.Stage = "-"
		if at >= loadEnd {
			row.Stage = "after"
		}
		for j, st := range t.stages {
			stEnd := st.endOr(loadEnd)
			from := st.start
			if j == 0 {
				from = 0 // the first stage starts a moment after the epoch
			}
			if st.started && at >= from && at < stEnd {
				row.Stage = st.plan.Name
				mid := (max(at, st.start) + min(rowEnd, stEnd)) / 2
				row.TargetRPS = Round3(st.plan.RateAt(mid - st.start))
			}
		}
		var vals []measure.Value // a row without a sample has no values
		if rw.sample != nil {
			vals = rw.sample.Values
			row.SampleT = fptr(secs(rw.sample.At))
		}
		for j, s := range t.cfg.Series {
			if vals == nil || j >= len(vals) {
				row.Series[s.Name] = nil
				continue
			}
			if vals[j].OK() {
				row.Series[s.Name] = fptr(vals[j].V)
			} else {
				row.Series[s.Name] = nil
				if row.Gaps == nil {
					row.Gaps = map[string]string{}
				}
				row.Gaps[s.Name] = vals[j].Gap
			}
		}
		r.Timeline = append(r.Timeline, row)
	}

	// Events in time order (stable: a stage's end comes before the next start).
	r.Events = append([]Event(nil), t.events...)
	sort.SliceStable(r.Events, func(i, j int) bool { return r.Events[i].T < r.Events[j].T })
	if r.Events == nil {
		r.Events = []Event{}
	}

	// The maps New makes are never nil, so their clones are written as {}
	// even when empty; Earliest stays nil (left out) until a KPI needs it.
	k := t.kpi
	k.Start, k.Peak, k.PeakAt = maps.Clone(t.start), maps.Clone(t.peak), maps.Clone(t.peakAt)
	k.Earliest = maps.Clone(k.Earliest)
	if t.predictedAt != nil && k.TimeToIntent != nil {
		k.IntentLag = fptr(Round3(*k.TimeToIntent - *t.predictedAt))
	}
	r.KPIs = k
	for _, s := range r.Stages {
		if s.MaxInFlight != nil && *s.MaxInFlight > *r.Load.MaxInFlight {
			*r.Load.MaxInFlight = *s.MaxInFlight
		}
	}
	if m.PeakInFlight > *r.Load.MaxInFlight {
		*r.Load.MaxInFlight = m.PeakInFlight
	}
	return r
}

// Round3 rounds to three decimals, half away from zero: the precision of
// report.json's rates, seconds and sizes.
func Round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// total is the run's load: its stages' and that of requests of no known
// stage.
func (t *Timeline) total() *load {
	all := newLoad()
	all.merge(t.run)
	for _, st := range t.stages {
		all.merge(st.load)
	}
	return all
}

// load accumulates requests into the run's or a stage's summary.
type load struct {
	requests, ok, good   int64
	aborted              int64 // ended by the user (second Ctrl-C): not errors
	promptTok, outTok    int64
	errors               map[string]int64
	samples              map[string]string
	ttft, e2e, itl, tpot *measure.Dist
	lag                  *measure.Dist
}

func newLoad() *load {
	return &load{errors: map[string]int64{}, samples: map[string]string{},
		ttft: measure.NewDist(3), e2e: measure.NewDist(3), itl: measure.NewDist(3), tpot: measure.NewDist(3), lag: measure.NewDist(3)}
}

func (l *load) add(r *measure.Request, slo SLO) {
	l.requests++
	if r.Scheduled >= 0 {
		l.lag.Add(r.Lag())
	}
	if r.Class == measure.Canceled {
		l.aborted++
		return
	}
	if r.Failed() {
		c := string(r.Class)
		l.errors[c]++
		if _, ok := l.samples[c]; !ok && r.Message != "" {
			l.samples[c] = r.Message
		}
		return
	}
	l.ok++
	l.e2e.Add(r.E2E)
	if r.TTFT > 0 {
		l.ttft.Add(r.TTFT)
	}
	if tp := r.TPOT(); tp > 0 {
		l.tpot.Add(tp)
	}
	if len(r.ITL) > 0 {
		k := r.TokensPerEvent()
		n := max(int64(math.Round(k)), 1)
		for _, g := range r.ITL {
			l.itl.AddN(time.Duration(float64(g)/k), n)
		}
	}
	if r.PromptTokens > 0 {
		l.promptTok += int64(r.PromptTokens)
	}
	if r.OutputTokens > 0 {
		l.outTok += int64(r.OutputTokens)
	}
	if slo.set() && (slo.TTFT == 0 || (r.TTFT > 0 && r.TTFT <= slo.TTFT)) &&
		(slo.TPOT == 0 || r.TPOT() <= slo.TPOT) && (slo.E2E == 0 || r.E2E <= slo.E2E) {
		l.good++
	}
}

// merge adds o's requests to l (a stage's to the run's). Of the error
// messages, l keeps its own and takes o's for classes it has none of.
func (l *load) merge(o *load) {
	l.requests += o.requests
	l.ok += o.ok
	l.aborted += o.aborted
	l.good += o.good
	l.promptTok += o.promptTok
	l.outTok += o.outTok
	for c, n := range o.errors {
		l.errors[c] += n
	}
	for c, m := range o.samples {
		if _, ok := l.samples[c]; !ok {
			l.samples[c] = m
		}
	}
	l.ttft.Merge(o.ttft)
	l.e2e.Merge(o.e2e)
	l.itl.Merge(o.itl)
	l.tpot.Merge(o.tpot)
	l.lag.Merge(o.lag)
}

func (l *load) report(span time.Duration, planned float64, slo SLO) LoadReport {
	lr := LoadReport{
		Requests: l.requests, OK: l.ok, Aborted: l.aborted, Errors: maps.Clone(l.errors), ErrorSamples: maps.Clone(l.samples),
		TTFT: l.ttft.Summary(), E2E: l.e2e.Summary(), ITL: l.itl.Summary(), TPOT: l.tpot.Summary(), SendLag: l.lag.Summary(),
		PromptTokens: l.promptTok, OutputTokens: l.outTok, LoadS: secs(span),
	}
	if len(lr.ErrorSamples) == 0 {
		lr.ErrorSamples = nil
	}
	// Requests the user aborted (second Ctrl-C) were sent, but they say
	// nothing about the target: they are not errors, and the error rate
	// leaves them out.
	if n := l.requests - l.aborted; n > 0 {
		lr.ErrorRate = round6(float64(n-l.ok) / float64(n))
	}
	if s := span.Seconds(); s > 0 {
		lr.AchievedRPS = Round3(float64(l.requests) / s)
		lr.TargetRPS = Round3(planned / s)
		lr.OutputTPS = Round3(float64(l.outTok) / s)
	}
	if slo.set() {
		g := &Goodput{SLO: map[string]float64{}, Good: l.good}
		for name, d := range map[string]time.Duration{"ttft": slo.TTFT, "tpot": slo.TPOT, "e2e": slo.E2E} {
			if d > 0 {
				g.SLO[name] = *ms(d)
			}
		}
		if l.requests > 0 {
			g.Share = round6(float64(l.good) / float64(l.requests))
		}
		if s := span.Seconds(); s > 0 {
			g.RPS = Round3(float64(l.good) / s)
		}
		lr.Goodput = g
	}
	return lr
}

func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }
