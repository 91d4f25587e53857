// Package scenario reads scenario files: what load to send, where to send
// it, what to observe and what must hold. It fills defaults, expands
// ${ENV} references, applies command-line overrides and reports every
// problem with its file, line, column and field.
package scenario

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/scaleout/scaleout/internal/spell"
	"github.com/scaleout/scaleout/internal/weburl"
	"github.com/scaleout/scaleout/internal/yamlread"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
)

// Lengths is a token-length distribution (see measure.Lengths).
type Lengths = measure.Lengths

// Scenario is a validated scenario: every field holds a usable value.
type Scenario struct {
	File        string // the path it was read from
	Name        string
	Description string

	Target         Target
	Request        Request
	Load           []Stage
	MaxInFlight    int           // 0: derived from the machine when the run starts
	RequestTimeout time.Duration // 0: none; long generations are never cut by default
	Threshold      float64       // queued requests per replica that should trigger scale-out (the "waiting > N" event)
	Observe        Observe
	Expect         []Expect // conditions that decide the verdict
	// Guard is "" (none), "repause" (the ScaledObject must be paused when
	// the run ends) or "act" (scaleout un-pauses it for the run and
	// restores its pause annotations after, through the Kubernetes API).
	Guard       string
	SLO         SLO
	ClientCheck ClientCheck // how the load generator's self-check judges a stage

	sim        *yaml.Node            // the raw sim: block, decoded by DecodeSim
	pos        map[string]*yaml.Node // where fields checked after loading stand in the file
	flags      map[string]string     // field → the flag that overrode it
	afterSet   bool                  // observe.after was given (file or flag)
	envSecrets []string              // what ${NAME} put into secret fields
}

// ClientCheck are the limits of the load generator's self-check: a stage
// whose sends went out later than MaxSendLag at the 99th percentile, or
// that sent more than MaxShortfall (a fraction) fewer requests than its
// schedule had due, was limited by the client and the run cannot pass.
type ClientCheck struct {
	MaxSendLag   time.Duration
	MaxShortfall float64
}

// The self-check's default limits: a send 50 ms late is far below what a
// scale-out timeline resolves, yet it is what a load generator that keeps
// its schedule stays under on an idle machine.
const (
	DefaultMaxSendLag   = 50 * time.Millisecond
	DefaultMaxShortfall = 0.05
)

// Target is where the load goes.
type Target struct {
	URL     string // base URL of the gateway; the API path is appended
	API     string // "completions" or "chat"
	Model   string // "" means the first model the target lists at /v1/models
	Stream  bool
	Headers []Header
}

// Header is one extra request header. Value is expanded from the
// environment and is treated as a secret: it is never printed or stored.
type Header struct {
	Name  string
	Value string
}

// Request says what each request asks for.
type Request struct {
	PromptTokens Lengths  // synthetic prompt length, when Prompts is empty
	Prompts      string   // a JSONL or ShareGPT prompts file, resolved against the scenario's directory
	Sample       int      // use a seeded sample of this many of the file's prompts; 0: all of them
	MaxTokens    Lengths  // output length
	IgnoreEOS    bool     // ask for exactly max_tokens (vLLM's ignore_eos)
	Temperature  *float64 // nil: the server's default
	Seed         uint64   // prompts and arrivals are reproducible from it
}

// Stage is one step of the load.
type Stage struct {
	Name        string
	Duration    time.Duration
	RateFrom    float64 // requests per second at the start of the stage (open loop)
	RateTo      float64 // at its end; equal to RateFrom for a constant rate
	Concurrency int     // closed loop: this many requests always in flight (0 for open loop)
	Poisson     bool    // Poisson arrivals instead of evenly spaced ones
	Until       *Expect // end the stage early once this holds
}

// String prints a stage the way the timeline shows it.
func (s Stage) String() string {
	var load string
	switch {
	case s.Concurrency > 0:
		load = fmt.Sprintf("concurrency %d", s.Concurrency)
	case s.RateFrom == s.RateTo:
		load = FormatRate(s.RateFrom)
	default:
		load = FormatRate(s.RateFrom) + "→" + FormatRate(s.RateTo)
	}
	if s.Poisson {
		load += " poisson"
	}
	out := fmt.Sprintf("%s: %s for %s", s.Name, load, FormatDuration(s.Duration))
	if s.Until != nil {
		out += " until " + s.Until.Text
	}
	return out
}

// Observe says what to watch while the load runs and after it.
type Observe struct {
	Prometheus   string   // a Prometheus server's base URL
	Token        string   // bearer token for Prometheus or the scrapes (a secret)
	Scrape       []string // /metrics pages to read directly instead of Prometheus
	Interval     time.Duration
	After        time.Duration // how long to keep watching once the load has stopped
	RestWait     time.Duration // how long to wait before the load for the fleet to be at rest (0: do not wait)
	VLLM         string        // label selector of the vLLM pods' series, e.g. {namespace="inference"}
	HPA          string        // NAMESPACE/NAME of the HPA
	Deployment   string        // NAMESPACE/NAME of the scaled Deployment
	ScaledObject string        // a ScaledObject manifest to derive series and predictions from
	Series       []measure.Series
	// Kubernetes is the cluster whose API is read for the HPA, the
	// Deployment, its pods and the ScaledObject (empty: client-go's
	// default loading rules).
	Kubernetes Kubernetes
}

// Kubernetes names a kubeconfig and a context in it.
type Kubernetes struct {
	Kubeconfig string
	Context    string
	Given      bool // observe.kubernetes, --kubeconfig or --context was given: the API must answer
}

// Source tells whether anything is observed.
func (o Observe) Source() bool { return o.Prometheus != "" || len(o.Scrape) > 0 }

// Expect is one condition, as written, with its place for error messages.
type Expect struct {
	Text string
	File string
	Line int
	Col  int // column of the first character of Text
}

// SLO are the per-request objectives goodput counts against (0: none).
type SLO struct {
	TTFT time.Duration
	TPOT time.Duration
	E2E  time.Duration
}

// Defaults a scenario gets for what it leaves out.
const (
	DefaultInterval  = 5 * time.Second
	DefaultThreshold = 5.0
	// DefaultAfter covers the HPA's 300 s scale-down stabilization window
	// plus a few syncs, so scale-in can be seen when the HPA is observed.
	DefaultAfter = 6 * time.Minute
	// DefaultRestWait is as long: a fleet left scaled out by an earlier run
	// is back at rest after the same window.
	DefaultRestWait = DefaultAfter
)

// Load reads and checks the scenario at path. Errors are Errors (every
// problem, each with file, line and field) or a file-system error.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse reads a scenario from data; file names it in errors and anchors
// relative paths. lookup is the environment for ${NAME} references.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Scenario, error) {
	docs, err := yamlread.Documents(file, data)
	if err != nil {
		return nil, err
	}
	switch {
	case len(docs) == 0:
		return nil, Errors{{File: file, Msg: "the file is empty (a scenario needs at least a load: list)"}}
	case len(docs) > 1:
		return nil, Errors{{File: file, Line: docs[1].Line, Col: docs[1].Column, Msg: "a second YAML document: a scenario file holds one"}}
	}
	r := &reader{Reader: &yamlread.Reader{File: file}, lookup: lookup}
	s := &Scenario{File: file, pos: map[string]*yaml.Node{}, flags: map[string]string{}}
	s.read(r, docs[0], true)
	if err := r.Err(); err != nil {
		return nil, err
	}
	s.envSecrets = r.secrets
	return s, nil
}

// FromFlags is the scenario of a command that sends no load (scaleout
// check) when no file is given: the defaults an empty file gets, then the
// flags. It has no stages.
func FromFlags(o Overrides) (*Scenario, error) {
	s := &Scenario{File: "flags", pos: map[string]*yaml.Node{}, flags: map[string]string{}}
	r := &reader{Reader: &yamlread.Reader{File: s.File}, lookup: os.LookupEnv}
	s.read(r, &yaml.Node{Kind: yaml.MappingNode}, false)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := s.Apply(o); err != nil {
		return nil, err
	}
	return s, nil
}

// read fills s from the document's root; needLoad says a missing load: is
// an error.
func (s *Scenario) read(r *reader, root *yaml.Node, needLoad bool) {
	top := r.Mapping(root, "")
	if v := top.Get("name"); v != nil {
		s.Name = r.str(v, "name")
	}
	if v := top.Get("description"); v != nil {
		s.Description = r.str(v, "description")
	}
	s.readTarget(r, top.Get("target"))
	s.readRequest(r, top.Get("request"))
	if load := top.Get("load"); load != nil || (needLoad && !misspelt(top, "load")) {
		s.readLoad(r, load, top.Key("load"))
	}
	if v := top.Get("max_in_flight"); v != nil {
		s.MaxInFlight = r.Int(v, "max_in_flight", 1)
	}
	if v := top.Get("request_timeout"); v != nil {
		s.RequestTimeout = r.duration(v, "request_timeout")
	}
	s.Threshold = DefaultThreshold
	if v := top.Get("threshold"); v != nil {
		s.Threshold = r.Float(v, "threshold")
		if s.Threshold <= 0 {
			r.Failf(v, "threshold", "must be above 0 (queued requests per replica, e.g. 5)")
		}
	}
	s.readObserve(r, top.Get("observe"))
	if v := top.Get("expect"); v != nil {
		s.Expect = s.readExpects(r, v, "expect")
	}
	if v := top.Get("guard"); v != nil {
		s.Guard = r.str(v, "guard")
		if s.Guard != "repause" && s.Guard != "act" && s.Guard != "none" {
			r.Failf(v, "guard", "%q is not a guard (try repause or act)", s.Guard)
		}
		if s.Guard == "none" {
			s.Guard = ""
		}
	}
	s.ClientCheck = ClientCheck{MaxSendLag: DefaultMaxSendLag, MaxShortfall: DefaultMaxShortfall}
	if v := top.Get("client_check"); v != nil {
		m := r.Mapping(v, "client_check")
		if d := m.Get("max_send_lag"); d != nil {
			s.ClientCheck.MaxSendLag = r.duration(d, "client_check.max_send_lag")
			if s.ClientCheck.MaxSendLag <= 0 {
				r.Failf(d, "client_check.max_send_lag", "must be above 0 (e.g. 250ms)")
			}
		}
		if f := m.Get("max_shortfall"); f != nil {
			s.ClientCheck.MaxShortfall = r.fraction(f, "client_check.max_shortfall")
		}
		m.Finish()
	}
	if v := top.Get("slo"); v != nil {
		m := r.Mapping(v, "slo")
		if d := m.Get("ttft"); d != nil {
			s.SLO.TTFT = r.duration(d, "slo.ttft")
		}
		if d := m.Get("tpot"); d != nil {
			s.SLO.TPOT = r.duration(d, "slo.tpot")
		}
		if d := m.Get("e2e"); d != nil {
			s.SLO.E2E = r.duration(d, "slo.e2e")
		}
		m.Finish()
	}
	if v := top.Get("sim"); v != nil {
		if v.Kind != yaml.MappingNode {
			r.Failf(v, "sim", "want a mapping of simulator settings, got %s", yamlread.Describe(v))
		}
		s.sim = v
	} else if top.Given("sim") {
		// "sim:" with nothing under it: the simulator with its defaults.
		s.sim = &yaml.Node{Kind: yaml.MappingNode, Line: top.Key("sim").Line, Column: top.Key("sim").Column}
	}
	top.Finish()
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(s.File), filepath.Ext(s.File))
	}
}

func (s *Scenario) readTarget(r *reader, n *yaml.Node) {
	m := r.Mapping(n, "target")
	t := &s.Target
	t.API, t.Stream = "completions", true
	if v := m.Get("url"); v != nil {
		t.URL = r.str(v, "target.url")
		s.pos["target.url"] = v
	}
	if v := m.Get("api"); v != nil {
		t.API = r.str(v, "target.api")
		if t.API != "completions" && t.API != "chat" {
			r.Failf(v, "target.api", "%q is not an API (completions or chat)", t.API)
		}
	}
	if v := m.Get("model"); v != nil {
		t.Model = r.str(v, "target.model")
	}
	if v := m.Get("stream"); v != nil {
		t.Stream = r.Bool(v, "target.stream")
	}
	if v := m.Get("headers"); v != nil {
		hm := r.Mapping(v, "target.headers")
		for _, k := range hm.Keys() {
			field := "target.headers." + k
			if strings.ContainsAny(k, " :\t") {
				r.Failf(hm.Key(k), field, "%q is not a header name", k)
			}
			v := hm.Get(k)
			if v == nil {
				r.Failf(hm.Key(k), field, "no value (write the header's value, e.g. Bearer ${GATEWAY_TOKEN})")
				continue
			}
			t.Headers = append(t.Headers, Header{Name: k, Value: r.str(v, field)})
		}
		hm.Finish()
	}
	m.Finish()
}

func (s *Scenario) readRequest(r *reader, n *yaml.Node) {
	m := r.Mapping(n, "request")
	q := &s.Request
	q.PromptTokens, q.MaxTokens, q.IgnoreEOS, q.Seed = measure.Fixed(128), measure.Fixed(64), true, 1
	if v := m.Get("prompt_tokens"); v != nil {
		q.PromptTokens = r.lengths(v, "request.prompt_tokens")
	}
	if v := m.Get("prompts"); v != nil {
		q.Prompts = r.str(v, "request.prompts")
		if q.Prompts != "" && !filepath.IsAbs(q.Prompts) {
			q.Prompts = filepath.Join(filepath.Dir(s.File), q.Prompts)
		}
		if _, err := os.Stat(q.Prompts); err != nil {
			r.Failf(v, "request.prompts", "cannot read %s: %v", q.Prompts, unwrapPathError(err))
		}
		if m.Given("prompt_tokens") {
			r.Failf(m.Key("prompt_tokens"), "request.prompt_tokens", "give prompt_tokens (synthetic prompts) or prompts (a file), not both")
		}
	}
	if v := m.Get("prompts_sample"); v != nil {
		q.Sample = r.Int(v, "request.prompts_sample", 1)
		if q.Prompts == "" {
			r.Failf(v, "request.prompts_sample", "samples a prompts file: give request.prompts too")
		}
	}
	if v := m.Get("max_tokens"); v != nil {
		q.MaxTokens = r.lengths(v, "request.max_tokens")
	}
	if v := m.Get("ignore_eos"); v != nil {
		q.IgnoreEOS = r.Bool(v, "request.ignore_eos")
	}
	if v := m.Get("temperature"); v != nil {
		t := r.Float(v, "request.temperature")
		if t < 0 {
			r.Failf(v, "request.temperature", "must be 0 or more")
		}
		q.Temperature = &t
	}
	if v := m.Get("seed"); v != nil {
		q.Seed = uint64(r.Int(v, "request.seed", 0))
	}
	m.Finish()
}

// misspelt tells whether m holds a key that is a misspelling of key: its
// unknown-field error (with the did-you-mean) says all there is to say,
// and before "key is missing".
func misspelt(m *yamlread.Mapping, key string) bool {
	for _, k := range m.Keys() {
		if k != key && spell.Closest(k, []string{key}) == key {
			return true
		}
	}
	return false
}

// minInterval is the shortest observation interval: below it the samples
// would only measure the sampling.
const minInterval = 100 * time.Millisecond

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (s *Scenario) readLoad(r *reader, n, key *yaml.Node) {
	if n == nil {
		r.Failf(key, "load", "a scenario needs at least one stage, e.g.\n  load:\n    - {name: ramp, duration: 2m, rate: 1/s..10/s}")
		return
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		r.Failf(n, "load", "want a list of stages, e.g. - {name: ramp, duration: 2m, rate: 1/s..10/s}")
		return
	}
	for i, c := range n.Content {
		field := fmt.Sprintf("load[%d]", i)
		m := r.Mapping(yamlread.Deref(c), field)
		st := Stage{Name: fmt.Sprintf("stage%d", i+1)}
		if v := m.Get("name"); v != nil {
			st.Name = r.str(v, field+".name")
		}
		if v := m.Get("duration"); v != nil {
			before := r.Len()
			st.Duration = r.duration(v, field+".duration")
			if st.Duration == 0 && r.Len() == before {
				r.Failf(v, field+".duration", "must be above 0")
			}
		} else {
			r.Failf(c, field+".duration", "missing (how long the stage lasts, e.g. duration: 2m)")
		}
		rate, conc := m.Get("rate"), m.Get("concurrency")
		switch {
		case rate != nil && conc != nil:
			r.Failf(conc, field+".concurrency", "give rate (open loop) or concurrency (closed loop), not both")
		case rate != nil:
			raw, _ := r.Scalar(rate, field+".rate")
			from, to, err := ParseRateRange(raw)
			if err != nil {
				r.Failf(rate, field+".rate", "%v", err)
			} else if from == 0 && to == 0 {
				r.Failf(rate, field+".rate", "a rate of 0 sends nothing (use a positive rate, or drop the stage)")
			}
			st.RateFrom, st.RateTo = from, to
		case conc != nil:
			st.Concurrency = r.Int(conc, field+".concurrency", 1)
		default:
			r.Failf(c, field, "give rate: (e.g. 10/s or 1/s..12/s) or concurrency: (e.g. 32)")
		}
		if v := m.Get("arrivals"); v != nil {
			switch a := r.str(v, field+".arrivals"); a {
			case "uniform":
			case "poisson":
				st.Poisson = true
			default:
				r.Failf(v, field+".arrivals", "%q is not an arrival process (uniform or poisson)", a)
			}
			if conc != nil {
				r.Failf(v, field+".arrivals", "arrivals apply to a rate, not to concurrency")
			}
		}
		if v := m.Get("until"); v != nil {
			e := s.expectAt(r, v, field+".until")
			st.Until = &e
		}
		m.Finish()
		s.Load = append(s.Load, st)
	}
	seen := map[string]int{}
	for i, st := range s.Load {
		if j, dup := seen[st.Name]; dup {
			r.Failf(n.Content[i], fmt.Sprintf("load[%d].name", i), "%q is also the name of load[%d] (stage names must differ)", st.Name, j)
		}
		seen[st.Name] = i
	}
}

func (s *Scenario) expectAt(r *reader, n *yaml.Node, field string) Expect {
	text, _ := r.Scalar(n, field)
	col := n.Column
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		col++ // the text starts after the quote
	}
	return Expect{Text: text, File: s.File, Line: n.Line, Col: col}
}

func (s *Scenario) readExpects(r *reader, n *yaml.Node, field string) []Expect {
	if n.Kind == yaml.ScalarNode {
		return []Expect{s.expectAt(r, n, field)}
	}
	if n.Kind != yaml.SequenceNode {
		r.Failf(n, field, "want a list of conditions, e.g. - desired >= 2 within 2m")
		return nil
	}
	var out []Expect
	for i, c := range n.Content {
		out = append(out, s.expectAt(r, yamlread.Deref(c), fmt.Sprintf("%s[%d]", field, i)))
	}
	return out
}

func (s *Scenario) readObserve(r *reader, n *yaml.Node) {
	m := r.Mapping(n, "observe")
	o := &s.Observe
	o.Interval, o.RestWait = DefaultInterval, DefaultRestWait
	if v := m.Get("prometheus"); v != nil {
		o.Prometheus = r.str(v, "observe.prometheus")
		s.pos["observe.prometheus"] = v
	}
	if v := m.Get("token"); v != nil {
		o.Token = r.str(v, "observe.token")
	}
	if v := m.Get("scrape"); v != nil {
		o.Scrape = r.strList(v, "observe.scrape")
		s.pos["observe.scrape"] = v
	}
	if v := m.Get("interval"); v != nil {
		o.Interval = r.duration(v, "observe.interval")
		if o.Interval < minInterval {
			r.Failf(v, "observe.interval", "%s is too short (%s at least; Prometheus scrapes every 15s by default)", o.Interval, minInterval)
		}
	}
	if v := m.Get("after"); v != nil {
		o.After = r.duration(v, "observe.after")
		s.afterSet = true
	}
	if v := m.Get("rest_wait"); v != nil {
		o.RestWait = r.duration(v, "observe.rest_wait")
	}
	if v := m.Get("vllm"); v != nil {
		o.VLLM = r.str(v, "observe.vllm")
		if o.VLLM != "" && !(strings.HasPrefix(o.VLLM, "{") && strings.HasSuffix(o.VLLM, "}")) {
			r.Failf(v, "observe.vllm", "%q is not a label selector (try '{namespace=\"inference\"}')", o.VLLM)
		}
	}
	if v := m.Get("hpa"); v != nil {
		o.HPA = r.str(v, "observe.hpa")
		checkNamespaced(r, v, "observe.hpa", o.HPA, "serving/keda-hpa-raw-vllm")
	}
	if v := m.Get("deployment"); v != nil {
		o.Deployment = r.str(v, "observe.deployment")
		checkNamespaced(r, v, "observe.deployment", o.Deployment, "serving/raw-vllm")
	}
	if v := m.Get("scaledobject"); v != nil {
		o.ScaledObject = r.str(v, "observe.scaledobject")
		if o.ScaledObject != "" && !filepath.IsAbs(o.ScaledObject) {
			o.ScaledObject = filepath.Join(filepath.Dir(s.File), o.ScaledObject)
		}
		if _, err := os.Stat(o.ScaledObject); err != nil {
			r.Failf(v, "observe.scaledobject", "cannot read %s: %v", o.ScaledObject, unwrapPathError(err))
		}
	}
	if v := m.Get("kubernetes"); v != nil {
		km := r.Mapping(v, "observe.kubernetes")
		o.Kubernetes.Given = true
		if c := km.Get("kubeconfig"); c != nil {
			o.Kubernetes.Kubeconfig = r.str(c, "observe.kubernetes.kubeconfig")
			if k := o.Kubernetes.Kubeconfig; k != "" && !filepath.IsAbs(k) {
				o.Kubernetes.Kubeconfig = filepath.Join(filepath.Dir(s.File), k)
			}
			if o.Kubernetes.Kubeconfig != "" {
				if _, err := os.Stat(o.Kubernetes.Kubeconfig); err != nil {
					r.Failf(c, "observe.kubernetes.kubeconfig", "cannot read %s: %v", o.Kubernetes.Kubeconfig, unwrapPathError(err))
				}
			}
		}
		if c := km.Get("context"); c != nil {
			o.Kubernetes.Context = r.str(c, "observe.kubernetes.context")
		}
		km.Finish()
	} else if m.Given("kubernetes") {
		o.Kubernetes.Given = true // "kubernetes:" alone: the default loading rules, and the API must answer
	}
	if v := m.Get("series"); v != nil {
		sm := r.Mapping(v, "observe.series")
		for _, k := range sm.Keys() {
			field := "observe.series." + k
			if !validSeriesName(k) {
				r.Failf(sm.Key(k), field, "%q is not a usable series name (letters, digits and _; it is used in expectations)", k)
			}
			v := sm.Get(k)
			if v == nil {
				r.Failf(sm.Key(k), field, "no query (write the PromQL, e.g. %s)", platform.WaitingQuery(""))
				continue
			}
			q := r.str(v, field)
			if strings.TrimSpace(q) == "" {
				r.Failf(sm.Key(k), field, "empty query")
			}
			o.Series = append(o.Series, measure.Series{Name: k, Query: q})
		}
		sm.Finish()
	}
	m.Finish()
}

func checkNamespaced(r *reader, n *yaml.Node, field, v, example string) {
	ns, name, ok := strings.Cut(v, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		r.Failf(n, field, "%q is not NAMESPACE/NAME (e.g. %s)", v, example)
	}
}

func validSeriesName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// AfterSet reports whether observe.after was given (file or flag).
func (s *Scenario) AfterSet() bool { return s.afterSet }

// HasSim reports whether the scenario carries a sim: block.
func (s *Scenario) HasSim() bool { return s.sim != nil }

// DecodeSim decodes the sim: block into into (a pointer to a struct whose
// fields carry yaml tags), over the defaults into already holds. Errors are
// Errors with the block's file positions.
func (s *Scenario) DecodeSim(into any) error {
	if s.sim == nil {
		return nil
	}
	r := &reader{Reader: &yamlread.Reader{File: s.File}, lookup: os.LookupEnv}
	r.decodeStruct(s.sim, "sim", into)
	return r.Err()
}

// Pos is the place of a field in the file, for errors found after loading
// (Line 0 when the field was not in the file).
func (s *Scenario) Pos(field string) (line, col int) {
	if n := s.pos[field]; n != nil {
		return n.Line, n.Column
	}
	return 0, 0
}

// Overrides are command-line flags that win over the file. Empty fields
// leave the file's value alone.
type Overrides struct {
	Target       string
	Model        string
	Prometheus   string
	Scrape       []string
	Interval     time.Duration
	After        *time.Duration
	RestWait     *time.Duration
	ScaledObject string
	Expect       []string
	Kubeconfig   string // --kubeconfig
	Context      string // --context
	GuardAct     bool   // --guard-act: guard: act
}

// Apply puts the overrides on the scenario. A flag that names a source
// replaces the file's source of the other kind: --prometheus drops the
// file's scrape pages and --scrape drops its Prometheus.
func (s *Scenario) Apply(o Overrides) error {
	var errs Errors
	flagErr := func(flag, format string, args ...any) {
		errs = append(errs, &Error{File: "flag", Field: flag, Msg: fmt.Sprintf(format, args...)})
	}
	if o.Target != "" {
		s.Target.URL = o.Target
		s.flags["target.url"] = "--target"
	}
	if o.Model != "" {
		s.Target.Model = o.Model
	}
	if o.Prometheus != "" {
		s.Observe.Prometheus, s.Observe.Scrape = o.Prometheus, nil
		s.flags["observe.prometheus"] = "--prometheus"
	}
	if len(o.Scrape) > 0 {
		s.Observe.Scrape, s.Observe.Prometheus = o.Scrape, ""
		s.flags["observe.scrape"] = "--scrape"
	}
	if o.Prometheus != "" && len(o.Scrape) > 0 {
		flagErr("--scrape", "give --prometheus or --scrape, not both")
	}
	if o.Interval != 0 {
		if o.Interval < minInterval {
			flagErr("--interval", "%s is too short (%s at least)", o.Interval, minInterval)
		}
		s.Observe.Interval = o.Interval
	}
	if o.After != nil {
		s.Observe.After, s.afterSet = *o.After, true
	}
	if o.RestWait != nil {
		if *o.RestWait < 0 {
			flagErr("--rest-wait", "%s is negative (0 does not wait)", *o.RestWait)
		}
		s.Observe.RestWait = *o.RestWait
	}
	if o.ScaledObject != "" {
		if _, err := os.Stat(o.ScaledObject); err != nil {
			flagErr("--scaledobject", "cannot read %s: %v", o.ScaledObject, unwrapPathError(err))
		}
		s.Observe.ScaledObject = o.ScaledObject
	}
	if o.Kubeconfig != "" {
		if _, err := os.Stat(o.Kubeconfig); err != nil {
			flagErr("--kubeconfig", "cannot read %s: %v", o.Kubeconfig, unwrapPathError(err))
		}
		s.Observe.Kubernetes.Kubeconfig, s.Observe.Kubernetes.Given = o.Kubeconfig, true
	}
	if o.Context != "" {
		s.Observe.Kubernetes.Context, s.Observe.Kubernetes.Given = o.Context, true
	}
	if o.GuardAct {
		s.Guard = "act"
	}
	for i, e := range o.Expect {
		s.Expect = append(s.Expect, Expect{Text: e, File: fmt.Sprintf("--expect[%d]", i), Col: 1})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Context is what a run knows beyond the file and the flags: the embedded
// simulator that serves it, and the names and series its ScaledObject or
// simulator imply. The zero Context adds nothing.
type Context struct {
	SimURL   string // the embedded simulator's base URL, when it is the target
	SimModel string // the model it serves, for a scenario that names none
	// Shorthands to use where the scenario and the flags give none.
	VLLM, HPA, Deployment string
	// Series observed beside the scenario's own (a ScaledObject's triggers);
	// a name the scenario uses already is not added again.
	Series []measure.Series
}

// Resolve returns the scenario as a run uses it: the context applied, the
// target and sources checked and normalised, observe.after defaulted and
// the series derived. s itself is not changed; call it once the flags are
// applied (Apply) and the context is known.
func (s *Scenario) Resolve(c Context) (*Scenario, error) {
	r := *s
	r.Observe.Series = append(append([]measure.Series(nil), s.Observe.Series...), c.Series...)
	var errs Errors
	at := func(field, format string, args ...any) {
		e := &Error{File: s.File, Field: field, Msg: fmt.Sprintf(format, args...)}
		if flag, ok := s.flags[field]; ok {
			e.File, e.Field = "flag", flag
		} else {
			e.Line, e.Col = s.Pos(field)
		}
		errs = append(errs, e)
	}
	if c.SimURL != "" {
		r.Target.URL = c.SimURL
		if !r.Observe.Source() {
			r.Observe.Scrape = []string{c.SimURL + "/metrics"}
		}
	}
	if r.Target.Model == "" {
		r.Target.Model = c.SimModel
	}
	for _, d := range []struct {
		field *string
		def   string
	}{{&r.Observe.VLLM, c.VLLM}, {&r.Observe.HPA, c.HPA}, {&r.Observe.Deployment, c.Deployment}} {
		if *d.field == "" {
			*d.field = d.def
		}
	}
	if r.Target.URL == "" {
		at("target.url", "missing: where is the gateway? (target: {url: http://…} or --target http://…)")
	} else if u, err := CheckURL(r.Target.URL); err != nil {
		at("target.url", "%v", err)
	} else {
		r.Target.URL = u
	}
	if r.Observe.Prometheus != "" && len(r.Observe.Scrape) > 0 {
		at("observe.scrape", "give observe.prometheus or observe.scrape, not both")
	}
	if r.Observe.Prometheus != "" {
		if u, err := CheckURL(r.Observe.Prometheus); err != nil {
			at("observe.prometheus", "%v", err)
		} else {
			r.Observe.Prometheus = u
		}
	}
	for i, p := range r.Observe.Scrape {
		if _, err := CheckURL(p); err != nil {
			at("observe.scrape", "[%d]: %v", i, err)
		}
	}
	if !s.afterSet {
		r.Observe.After = 0
		if r.Observe.Source() && (r.Observe.HPA != "" || r.Observe.ScaledObject != "") {
			r.Observe.After = DefaultAfter
		}
	}
	r.Observe.Series = r.Observe.derived()
	if len(errs) > 0 {
		return nil, errs
	}
	return &r, nil
}

// CheckURL checks an http(s) base URL and returns it without a trailing
// slash or /v1 (the API path is appended to it).
func CheckURL(raw string) (string, error) {
	u, err := weburl.Base(raw)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// columnOrder is the order of the well-known series in the timeline.
var columnOrder = []string{platform.Waiting, platform.Running, platform.KVCache, platform.Desired, platform.Current, platform.Ready}

// derived builds the series list: the shorthands (vllm, hpa, deployment)
// and the file's own series, the well-known names first in the timeline's
// column order, then the others in file order. A series the file names
// itself replaces the shorthand of that name.
func (o Observe) derived() []measure.Series {
	byName := map[string]measure.Series{}
	var own []string
	for _, s := range o.Series {
		if _, dup := byName[s.Name]; !dup {
			own = append(own, s.Name)
		}
		byName[s.Name] = s
	}
	add := func(name, query string) {
		if _, ok := byName[name]; !ok {
			byName[name] = measure.Series{Name: name, Query: query}
		}
	}
	if o.VLLM != "" {
		add(platform.Waiting, platform.WaitingQuery(o.VLLM))
		add(platform.Running, platform.RunningQuery(o.VLLM))
		add(platform.KVCache, platform.KVCacheQuery(o.VLLM))
	}
	if ns, name, ok := strings.Cut(o.HPA, "/"); ok {
		add(platform.Desired, platform.DesiredQuery(ns, name))
		add(platform.Current, platform.CurrentQuery(ns, name))
	}
	if ns, name, ok := strings.Cut(o.Deployment, "/"); ok {
		add(platform.Ready, platform.ReadyQuery(ns, name))
	}
	var out []measure.Series
	for _, n := range columnOrder {
		if s, ok := byName[n]; ok {
			out = append(out, s)
			delete(byName, n)
		}
	}
	for _, n := range own {
		if s, ok := byName[n]; ok {
			out = append(out, s)
		}
	}
	return out
}

// FormatRate prints requests per second the way scenarios write them.
func FormatRate(perSecond float64) string {
	switch {
	case perSecond >= 1 || perSecond == 0:
		return trimFloat(perSecond) + "/s"
	case perSecond*60 >= 1:
		return trimFloat(perSecond*60) + "/m"
	default:
		return trimFloat(perSecond*3600) + "/h"
	}
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// FormatDuration prints a duration compactly: 45s, 2m, 1m30s, 1h5m.
func FormatDuration(d time.Duration) string {
	if d < time.Second {
		return d.String()
	}
	d = d.Round(time.Second)
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}

// SimError places an error about a field of the sim: block (named by its
// dotted yaml path, e.g. replicas.max) at that field in the file, or at
// the block when the field is not written there.
func (s *Scenario) SimError(path, msg string) *Error {
	e := &Error{File: s.File, Field: "sim." + path, Msg: msg}
	n := s.sim
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	for _, key := range strings.Split(path, ".") {
		if n = yamlread.Get(n, key); n == nil {
			break
		}
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}
