// Package timeline joins what the load generator measured and what the
// watcher sampled on one clock: rows every interval, the scale events, the
// KPIs, the expectations and the verdict, and renders them (terminal,
// JSON, CSV, HTML). It has no network code: it consumes measure.Request
// and measure.Sample values and produces a Report.
package timeline

import (
	"encoding/json"
	"io"
	"math"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// Report is everything a run measured, in the shape of report.json (a
// public interface, documented in docs/report.md). Renderers read only a
// Report, so a stored run can be rendered again.
type Report struct {
	Version        int            `json:"version"`
	Scenario       string         `json:"scenario"`
	File           string         `json:"file,omitempty"`
	Started        time.Time      `json:"started"`
	DurationS      float64        `json:"duration_s"`
	Partial        bool           `json:"partial"`
	PartialReason  string         `json:"partial_reason,omitempty"`
	Target         TargetInfo     `json:"target"`
	IntervalS      float64        `json:"interval_s"`
	MaxInFlightCap int            `json:"max_in_flight_cap"` // the run's max_in_flight
	Threshold      float64        `json:"threshold"`
	Stages         []StageReport  `json:"stages"`
	Load           LoadReport     `json:"load"`
	Series         []SeriesInfo   `json:"series"`
	Timeline       []Row          `json:"timeline"`
	Events         []Event        `json:"events"`
	KPIs           KPIs           `json:"kpis"`
	Expectations   []Outcome      `json:"expectations"`
	Verdict        Verdict        `json:"verdict"`
	Guard          *GuardResult   `json:"guard,omitempty"`
	Server         *ServerCount   `json:"server,omitempty"`
	ClientLimited  *ClientLimited `json:"client_limited,omitempty"`
	ClientCheck    *ClientCheck   `json:"client_check,omitempty"` // the self-check's limits (the scenario's client_check, else the defaults)
	Notes          []string       `json:"notes,omitempty"`
	Baseline       *Baseline      `json:"baseline,omitempty"`
	// RequestsJSONL is how many whole lines requests.jsonl holds (one per
	// request; fewer than load.requests when writing it failed).
	RequestsJSONL *int64 `json:"requests_jsonl_lines,omitempty"`
}

// Baseline is the fleet as the run found it, read just before the first
// request. The KPIs measure changes from it, and an expectation that says
// something comes about (no when, within, for, after load) does not count a
// value that already met it then.
type Baseline struct {
	T      float64             `json:"t_s"`            // when it was read, from the epoch (negative: before the load)
	Values map[string]*float64 `json:"values"`         // every series; null for a gap
	Gaps   map[string]string   `json:"gaps,omitempty"` // series → why it had no value
	// MinReplicas is the HPA's minimum when known, and MinFrom where it
	// was read: "hpa" (kube-state-metrics), "scaledobject" or "sim".
	MinReplicas *float64 `json:"min_replicas,omitempty"`
	MinFrom     string   `json:"min_from,omitempty"`
	// AtRest: nothing waiting or running, and desired, current and ready
	// equal (and at the minimum when it is known), by the series observed.
	// NotAtRest says what kept it from rest.
	AtRest    bool     `json:"at_rest"`
	NotAtRest []string `json:"not_at_rest,omitempty"`
	WaitedS   float64  `json:"waited_s"` // how long the run waited for rest before the load
}

// ReportVersion is bumped when a field changes meaning or goes away.
const ReportVersion = 1

// TargetInfo is where the load went (no headers: they may hold secrets).
type TargetInfo struct {
	URL         string `json:"url"`
	API         string `json:"api"`
	Model       string `json:"model"`
	Stream      bool   `json:"stream"`
	Observation string `json:"observation,omitempty"` // "prometheus http://…", "scrape of 1 page", ""
}

// SeriesInfo names one observed series and its query.
type SeriesInfo struct {
	Name   string `json:"name"`
	Query  string `json:"query"`
	Source string `json:"source,omitempty"` // prometheus, scrape, kubernetes API, computed
}

// LoadReport sums up the requests of the whole run, or of one stage.
type LoadReport struct {
	Requests     int64             `json:"requests"`
	OK           int64             `json:"ok"`
	Aborted      int64             `json:"aborted"` // ended by the user (a second Ctrl-C): neither ok nor errors
	Errors       map[string]int64  `json:"errors"`
	ErrorRate    float64           `json:"error_rate"`              // failed / requests, 0..1
	ErrorSamples map[string]string `json:"error_samples,omitempty"` // class → one message seen
	TTFT         measure.Summary   `json:"ttft_ms"`
	E2E          measure.Summary   `json:"e2e_ms"`
	ITL          measure.Summary   `json:"itl_ms"`
	TPOT         measure.Summary   `json:"tpot_ms"`
	SendLag      measure.Summary   `json:"send_lag_ms"`
	PromptTokens int64             `json:"prompt_tokens"`
	OutputTokens int64             `json:"output_tokens"`
	AchievedRPS  float64           `json:"achieved_rps"`  // requests sent per second of load
	TargetRPS    float64           `json:"target_rps"`    // what the schedule asked for (0 under concurrency)
	OutputTPS    float64           `json:"output_tps"`    // output tokens per second of load
	LoadS        float64           `json:"load_s"`        // seconds the load ran
	MaxInFlight  *int64            `json:"max_in_flight"` // the most requests in flight at once (row ends, a stage's ends, the client's peak); null: not measured
	CapReached   int64             `json:"cap_reached"`   // sends held back by max_in_flight
	Goodput      *Goodput          `json:"goodput,omitempty"`
}

// Goodput is the share and rate of requests that met every SLO.
type Goodput struct {
	SLO   map[string]float64 `json:"slo_ms"`
	Good  int64              `json:"good"`
	Share float64            `json:"share"` // good / requests
	RPS   float64            `json:"rps"`
}

// StageReport is one stage's plan, timing and load.
type StageReport struct {
	Name     string  `json:"name"`
	Plan     string  `json:"plan"` // "ramp 1/s→12/s for 2m"
	PlannedS float64 `json:"planned_s"`
	StartS   float64 `json:"start_s"`
	EndS     float64 `json:"end_s"`
	EndedBy  EndedBy `json:"ended_by"`
	// Concurrency is what a closed-loop stage asked for; Workers what it
	// ran with (max_in_flight caps it).
	Concurrency int `json:"concurrency,omitempty"`
	Workers     int `json:"workers,omitempty"`
	LoadReport
	Client *ClientUse `json:"client,omitempty"` // what the stage cost the load generator
}

// ClientUse is what a stage cost the load generator's own process.
type ClientUse struct {
	CPUSeconds float64 `json:"cpu_s"`
	CPUCores   float64 `json:"cpu_cores"` // CPU seconds per second of the stage
	Cores      int     `json:"cores"`     // the cores the process may use (GOMAXPROCS)
	RSSMB      float64 `json:"rss_mb"`    // resident memory at the stage's end (0: not known, off Linux)
	CapReached int64   `json:"cap_reached"`
	// CPUWaitS is how long the client's threads waited, runnable, for a
	// CPU during the stage (Linux's schedstat); null where not known. Large
	// against CPUSeconds: other processes kept the machine busy.
	CPUWaitS *float64 `json:"cpu_wait_s"`
}

// ClientLimited says which stages the load generator could not deliver as
// planned, and why: the run then proves nothing about the target's scaling
// at that load, and its verdict cannot be pass.
type ClientLimited struct {
	Stages []LimitedStage `json:"stages"`
}

// LimitedStage is one stage the client fell short in.
type LimitedStage struct {
	Stage       string   `json:"stage"`
	AchievedRPS float64  `json:"achieved_rps"`
	TargetRPS   float64  `json:"target_rps"`
	LagP99MS    *float64 `json:"send_lag_p99_ms"`
	Short       bool     `json:"short"` // it sent fewer than client_check.max_shortfall allows
	Late        bool     `json:"late"`  // its send lag p99 passed client_check.max_send_lag
	Busy        bool     `json:"busy"`  // the client waited for a CPU: other processes kept the machine busy
	Reasons     []string `json:"reasons"`
}

// Row is one interval of the timeline. Counts are within the row; in
// flight is at the row's end; series are the last sample in the row.
type Row struct {
	T         float64             `json:"t_s"`
	Span      float64             `json:"span_s"`             // the row's length: the interval, less for the run's last row
	SampleT   *float64            `json:"sample_s,omitempty"` // when the row's sample was taken (absent: no sample in the row)
	Stage     string              `json:"stage"`
	TargetRPS float64             `json:"target_rps"`
	Sent      int64               `json:"sent"`
	Done      int64               `json:"done"`
	InFlight  int64               `json:"in_flight"`
	Errors    int64               `json:"errors"`
	Aborted   int64               `json:"aborted"` // ended by the user (second Ctrl-C) within the row: not in done nor errors
	TTFTP50   *float64            `json:"ttft_p50_ms"`
	TTFTP95   *float64            `json:"ttft_p95_ms"`
	OutputTPS float64             `json:"output_tps"`
	LagP50    *float64            `json:"send_lag_p50_ms,omitempty"` // how late sends went out against the schedule
	LagP99    *float64            `json:"send_lag_p99_ms,omitempty"`
	LagMax    *float64            `json:"send_lag_max_ms,omitempty"`
	Capped    bool                `json:"capped,omitempty"` // max_in_flight held sends back in this row
	Series    map[string]*float64 `json:"series"`
	Gaps      map[string]string   `json:"gaps,omitempty"` // series → why it has no value
}

// Verdict is a run's outcome.
type Verdict string

const (
	Pass Verdict = "pass" // every expectation held and nothing blocked a pass
	Fail Verdict = "fail" // an expectation failed, or the client, or a strict guard
	None Verdict = "none" // nothing was expected, and nothing failed
	// Unrecorded: the run directory could not be written whole, whatever
	// was measured (the command exits 3).
	Unrecorded Verdict = "unrecorded"
)

// EndedBy says why a stage ended.
type EndedBy string

const (
	ByDuration  EndedBy = "duration"    // it ran its planned time
	ByUntil     EndedBy = "until"       // its until held
	ByInterrupt EndedBy = "interrupt"   // Ctrl-C or SIGTERM
	ByError     EndedBy = "error"       // the load generator failed
	NotStarted  EndedBy = "not started" // the run ended before it
)

// EventKind names what an event is about.
type EventKind string

// The event kinds.
const (
	StageStart EventKind = "stage_start"
	StageEnd   EventKind = "stage_end"
	LoadStop   EventKind = "load_stop"
	Change     EventKind = "change"    // a replica series changed value (from → to)
	Crossing   EventKind = "threshold" // waiting crossed threshold × replicas
	GapStart   EventKind = "gap"       // a series lost its value
	GapEnd     EventKind = "gap_end"
	CapReached EventKind = "max_in_flight"
	Divergence EventKind = "divergence" // observed desired did not follow the prediction
	Note       EventKind = "note"

	// Read from the Kubernetes API, at the API's own time (kube.Source).
	K8sRescale   EventKind = "k8s_rescale"   // the HPA changed its size: its own message ("New size: 3; reason: …")
	K8sCondition EventKind = "k8s_condition" // an HPA condition (AbleToScale, ScalingActive, ScalingLimited) changed status or reason
	SOCondition  EventKind = "so_condition"  // a ScaledObject condition (Ready, Active, Fallback, Paused) changed
	PodPending   EventKind = "pod_pending"   // a pod cannot be scheduled: the scheduler's reason
	PodScheduled EventKind = "pod_scheduled" // a pod was bound to a node
	PodReady     EventKind = "pod_ready"     // a pod's Ready condition turned True
	K8sWatch     EventKind = "k8s_watch"     // a watch of the API lost its connection (a gap), resumed, or was listed again (410 Gone)
)

// Event is one thing that happened, on the run's clock.
type Event struct {
	T      float64   `json:"t_s"`
	Kind   EventKind `json:"kind"`
	Series string    `json:"series"` // "" when the event is not about a series
	From   *float64  `json:"from"`
	To     *float64  `json:"to"`
	Text   string    `json:"text"`
	// Since is set on a change first seen when its series came back from a
	// gap: the time of the series' last value before it. The change
	// happened somewhere between Since and T.
	Since *float64 `json:"since_s,omitempty"`
}

// hidden reports whether the event lists leave the event out: the stage
// column and the stage table tell a stage's start and end, the values a
// gap's end.
func (e Event) hidden() bool {
	return e.Kind == StageStart || e.Kind == StageEnd || e.Kind == GapEnd
}

// rowOf returns the index of the timeline row the offset t (seconds) falls
// in; the epsilon keeps an offset on a row's start in that row.
func (r *Report) rowOf(t float64) int {
	return int(math.Floor(t/r.IntervalS + 1e-9))
}

// KPIs are the scale-out figures, in seconds from the load's start (or
// from the load's stop for scale-in); nil when not reached.
type KPIs struct {
	TimeToQueue  *float64           `json:"time_to_queue_s"`           // waiting first above threshold × replicas
	TimeToIntent *float64           `json:"time_to_intent_s"`          // desired first above its starting value
	TimeToReady  *float64           `json:"time_to_ready_s"`           // ready first above its starting value
	ScaleIn      *float64           `json:"scale_in_s"`                // load stop → desired back to its starting value
	ReadyIn      *float64           `json:"ready_in_s"`                // load stop → ready back to its starting value
	IntentLag    *float64           `json:"intent_lag_s"`              // predicted desired first rose → observed desired first rose
	FallsInLoad  int                `json:"desired_falls_during_load"` // times desired fell while the load still ran
	Start        map[string]float64 `json:"start"`                     // the value each series started from: the baseline's, else its first sample's
	Peak         map[string]float64 `json:"peak"`
	PeakAt       map[string]float64 `json:"peak_at_s"`
	// Earliest holds, for a KPI first seen when its series came back from a
	// gap, the earliest it can have been (keyed by the KPI's field name):
	// the KPI lies between that and its own value.
	Earliest map[string]float64 `json:"earliest,omitempty"`
	// Clock says, per KPI (keyed like Earliest), which clock measured it:
	// "API time" when it is the Kubernetes API's own timestamp of the
	// change (the HPA's rescale event, the pod's Ready transition; whole
	// seconds), "sample" when it is the first sample that showed it.
	Clock map[string]string `json:"clock,omitempty"`
}

// The keys of KPIs.Earliest and KPIs.Clock for the KPIs the Kubernetes API
// can time.
const (
	KPITimeToIntent = kpiTimeToIntent
	KPITimeToReady  = kpiTimeToReady
	KPIScaleIn      = kpiScaleIn
)

// The keys of KPIs.Earliest, one per KPI that can be first seen after a
// gap: the JSON names of its fields above (a test holds them to the tags).
const (
	kpiTimeToQueue  = "time_to_queue_s"
	kpiTimeToIntent = "time_to_intent_s"
	kpiTimeToReady  = "time_to_ready_s"
	kpiScaleIn      = "scale_in_s"
	kpiReadyIn      = "ready_in_s"
)

// Outcome is one expectation's result.
type Outcome struct {
	Expr   string `json:"expr"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// ServerCount is what the server side counted over the run, set beside
// the client's own counts to show that nothing was lost.
type ServerCount struct {
	Source       string `json:"source"`             // "embedded simulator", or the vLLM counters queried
	Requests     *int64 `json:"requests,omitempty"` // requests the server finished, whatever the outcome (absent: not counted)
	OK           int64  `json:"ok"`                 // requests it finished successfully
	OutputTokens int64  `json:"output_tokens"`
	Detail       string `json:"detail,omitempty"`
}

// GuardResult is the paused-by-default guard's finding at the end of a run.
type GuardResult struct {
	Required string `json:"required"` // "repause" or "act"
	State    string `json:"state"`    // paused, unpaused, unknown
	OK       bool   `json:"ok"`
	Detail   string `json:"detail"`
	// With guard: act: the pause annotations the ScaledObject had before
	// the run (restored after it), the window it was un-paused by the run
	// (it costs money), how KEDA was seen to honour the pause again, and
	// the kubectl command to run when the guard could not re-pause.
	Before   string          `json:"before,omitempty"`
	Unpaused *UnpausedWindow `json:"unpaused,omitempty"`
	Verified string          `json:"verified,omitempty"`
	Command  string          `json:"command,omitempty"`
}

// UnpausedWindow is when the guard un-paused the ScaledObject and when it
// restored the pause (End nil: it could not).
type UnpausedWindow struct {
	Start     time.Time  `json:"start"`
	End       *time.Time `json:"end"`
	DurationS float64    `json:"duration_s"` // to End, or to when the run gave up
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a report written by WriteJSON.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, err
	}
	return &r, nil
}
