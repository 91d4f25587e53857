package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/scaleout/scaleout/internal/weburl"
	"github.com/scaleout/scaleout/measure"
)

// ErrAborted is what Run returns once Abort was called: Abort is final, a
// stage run after it sends nothing.
var ErrAborted = errors.New("loadgen: load aborted")

// Config is how the generator reaches the target.
type Config struct {
	URL         string            // base URL of the gateway, e.g. http://127.0.0.1:8000 (Bodies.Path is appended; a trailing /v1 is dropped)
	Header      http.Header       // extra headers (Authorization…); values are secrets: never printed or recorded
	Bodies      *Bodies           // the request bodies; their Path, API and Stream decide the endpoint and the parsing
	MaxInFlight int               // cap on concurrent requests; 0 means no cap
	Timeout     time.Duration     // whole-request client timeout; 0 means none (long generations must not be cut)
	Epoch       time.Time         // the run's epoch; every offset in a record is measured from it (monotonic); zero: the start of the first stage
	Transport   http.RoundTripper // inner transport; nil means NewTransport()
	// Redact removes the run's secrets from a failure's message (a server
	// may echo the Authorization header in its error); nil keeps it as is.
	Redact func(string) string
}

// String prints the configuration with header values redacted.
func (c Config) String() string {
	keys := make([]string, 0, len(c.Header))
	for k := range c.Header {
		keys = append(keys, http.CanonicalHeaderKey(k)+": ***")
	}
	sort.Strings(keys)
	return fmt.Sprintf("{URL:%s Header:[%s] Bodies:%v Stream:%t MaxInFlight:%d Timeout:%s}",
		weburl.Redact(c.URL), strings.Join(keys, " "), c.Bodies, c.Bodies != nil && c.Bodies.Stream(), c.MaxInFlight, c.Timeout)
}

// Stage is one step of the load: open loop (Schedule) or closed loop
// (Concurrency), for Duration.
type Stage struct {
	Name        string
	Duration    time.Duration
	Schedule    Schedule // open loop; nil when Concurrency > 0
	Concurrency int      // closed loop with exactly this many requests in flight
	// Start is when the stage starts on the run's clock (the common clock
	// of sharded runs): Run waits for it, and one already past shifts the
	// schedule so that every hit keeps the instant it was due at (those
	// due before Run began go out at once, late). Zero: the stage starts
	// when Run is called.
	Start time.Time

	// global maps a shard's hit to its index in the whole stage (Split
	// sets it): the record's Seq and the request id, so that shards never
	// send the same id and a shard's hit has the whole run's body.
	global func(uint64) uint64
}

// Validate checks that the stage is runnable.
func (s Stage) Validate() error {
	switch {
	case s.Duration <= 0:
		return fmt.Errorf("loadgen: stage %q: duration %s: want more than 0", s.Name, s.Duration)
	case s.Concurrency < 0:
		return fmt.Errorf("loadgen: stage %q: concurrency %d: want 0 or more", s.Name, s.Concurrency)
	case s.Concurrency > 0 && s.Schedule != nil:
		return fmt.Errorf("loadgen: stage %q: give a schedule or a concurrency, not both", s.Name)
	case s.Concurrency == 0 && s.Schedule == nil:
		return fmt.Errorf("loadgen: stage %q: give a schedule or a concurrency", s.Name)
	}
	return nil
}

// Live is a snapshot of the generator's counters, for live progress.
type Live struct {
	Sent, Done, Errors uint64
	InFlight           int64  // requests in flight now
	PeakInFlight       int64  // the most requests in flight at once since the generator was created
	CapReached         uint64 // how many sends found MaxInFlight already reached (the rate was held back): open-loop hits due while every slot was busy, sent late or not by the stage's end
}

// Window is how a stage ran.
type Window struct {
	Stage   int
	Name    string
	Stopped bool // Stop, Abort or the context ended it before its duration

	// A closed loop's concurrency: the one the stage asked for and the
	// number of workers it ran with, which Config.MaxInFlight caps (a
	// memory and socket bound). Both are 0 for an open loop.
	Concurrency, Workers int

	// The stage's String() ("warmup: 10/s for 30s") and when it ran, as
	// offsets from the epoch (end: when sending stopped); only the package's
	// tests read them.
	label      string
	start, end time.Duration
}

type counters struct {
	sent, done, errors, capReached atomic.Uint64
	inFlight, peakInFlight         atomic.Int64
}

// addInFlight counts a request going out and raises the peak.
func (c *counters) addInFlight() {
	n := c.inFlight.Add(1)
	for {
		p := c.peakInFlight.Load()
		if n <= p || c.peakInFlight.CompareAndSwap(p, n) {
			return
		}
	}
}

// Generator sends the load, one vegeta attack per stage, and turns every
// request into a measure.Request for the sink.
//
// Goroutines: Run is called by one goroutine at a time (stages run in
// order). Each stage's vegeta workers call the stage's timing transport,
// which calls the sink. One drain goroutine per stage reads vegeta's results
// until vegeta closes them, after the stage's last request ended.
type Generator struct {
	cfg    Config
	sink   func(*measure.Request)
	inner  http.RoundTripper
	url    string
	header http.Header
	stream bool

	abortCtx context.Context         // canceled by Abort; every request's context derives from it
	abort    context.CancelCauseFunc // its cause is an *abortCause

	live counters

	mu      sync.Mutex
	epoch   time.Time
	running bool
	cur     *stage        // the running stage, nil between stages
	active  int           // stages whose vegeta results are not closed yet
	idle    chan struct{} // closed when active drops to 0; nil while idle
	windows []Window
}

// New builds a generator. sink receives every finished request, exactly
// once; it is called concurrently from the request goroutines, so it must be
// safe for concurrent use and quick (it holds a vegeta worker while it runs).
// A nil sink drops the records (Live still counts them).
func New(cfg Config, sink func(*measure.Request)) (*Generator, error) {
	if cfg.Bodies == nil {
		return nil, errors.New("loadgen: Config.Bodies is nil")
	}
	if cfg.MaxInFlight < 0 {
		return nil, fmt.Errorf("loadgen: max in flight %d: want 0 (no cap) or more", cfg.MaxInFlight)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("loadgen: timeout %s: want 0 (none) or more", cfg.Timeout)
	}
	target, err := targetURL(cfg.URL, cfg.Bodies.Path())
	if err != nil {
		return nil, err
	}
	if sink == nil {
		sink = func(*measure.Request) {}
	}
	g := &Generator{
		cfg: cfg, sink: sink, inner: cfg.Transport, url: target,
		stream: cfg.Bodies.Stream(), epoch: cfg.Epoch,
	}
	if g.inner == nil {
		g.inner = NewTransport()
	}
	g.header = make(http.Header, len(cfg.Header)+1)
	for k, vs := range cfg.Header {
		g.header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	g.header.Set("Content-Type", "application/json")
	g.abortCtx, g.abort = context.WithCancelCause(context.Background())
	return g, nil
}

// targetURL checks base and appends path to it.
func targetURL(base, path string) (string, error) {
	u, err := weburl.Base(base)
	if err != nil {
		return "", fmt.Errorf("loadgen: target URL %q: want http://host[:port] or https://host[:port]", weburl.Redact(base))
	}
	u.Path += path
	return u.String(), nil
}

// maxIdleConns is the idle connections kept per host: at least the peak
// concurrency, so a steady load reuses its connections.
const maxIdleConns = 10000

// NewTransport is the inner transport used when Config.Transport is nil:
// HTTP/1.1, no proxy (a load tool measures the target, not a proxy), no
// compression, 10 s dial timeout, 10,000 idle connections per host and no
// response-header timeout (queued requests may hold headers).
func NewTransport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConns:        0, // no global limit
		MaxIdleConnsPerHost: maxIdleConns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
	}
}

// Run sends stage idx until its duration passes, Stop is called or ctx ends,
// and returns when sending has stopped: at the stage start + Duration at the
// latest, never waiting for requests still in flight, which go on and reach
// the sink when they end. It returns nil when the duration passed or Stop
// ended the stage, ctx.Err() when ctx ended it, ErrAborted after Abort.
// Stages run one at a time.
func (g *Generator) Run(ctx context.Context, idx int, st Stage) error {
	if err := st.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	if g.abortCtx.Err() != nil { // checked under mu: an Abort after this sees g.cur
		g.mu.Unlock()
		return ErrAborted
	}
	if g.running {
		g.mu.Unlock()
		return errors.New("loadgen: Run called while another stage runs")
	}
	g.running = true
	s := &stage{g: g, idx: idx, sched: st.Schedule, global: st.global, du: st.Duration, stop: make(chan struct{})}
	g.cur = s
	g.mu.Unlock()

	client := &http.Client{
		Transport: s,
		// A redirect is recorded as its 3xx, never followed: one request, one record.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// vegeta.Client goes first: it replaces the whole client, and the options
	// that type-assert *http.Transport must never follow it.
	opts := []func(*vegeta.Attacker){vegeta.Client(client)}
	var pacer vegeta.Pacer
	var open *gatedPacer
	workers := 0
	if st.Concurrency > 0 {
		workers = st.Concurrency
		if c := g.cfg.MaxInFlight; c > 0 && workers > c {
			workers = c // the cap wins; Window.Workers says so
		}
		opts = append(opts, vegeta.Workers(uint64(workers)), vegeta.MaxWorkers(uint64(workers)))
		pacer = &gatedPacer{s: s, p: closedLoop{du: st.Duration}}
	} else {
		p := &gatedPacer{s: s, p: st.Schedule, fullEnd: -1}
		if c := g.cfg.MaxInFlight; c > 0 {
			opts = append(opts, vegeta.Workers(uint64(min(c, vegeta.DefaultWorkers))), vegeta.MaxWorkers(uint64(c)))
			p.cap = uint64(c)
		}
		pacer, open = p, p
	}
	atk := vegeta.NewAttacker(opts...)

	// A stage given its start waits for it. Stop, Abort and ctx end the
	// wait; the stage then ends at once below, sending nothing.
	if wait := time.Until(st.Start); !st.Start.IsZero() && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.stop:
		case <-ctx.Done():
		}
		t.Stop()
	}

	// The stage starts now, as close as can be to vegeta's own start (its
	// pacer's elapsed counts from inside Attack, a few µs later), or at
	// its given start, which the pacer's elapsed is shifted to.
	g.mu.Lock()
	start := time.Now()
	if !st.Start.IsZero() {
		if late := start.Sub(st.Start); late > 0 {
			start = st.Start
			if p, ok := pacer.(*gatedPacer); ok {
				p.shift = late
			}
		}
	}
	if g.epoch.IsZero() {
		g.epoch = start
	}
	s.start, s.epoch, s.startOff = start, g.epoch, start.Sub(g.epoch)
	g.active++ // before the attack starts: Wait must see the stage from its first request
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	g.mu.Unlock()
	results := atk.Attack(s.target, pacer, max(st.Duration-time.Since(start), 1), "")
	g.track(results, open)

	timer := time.NewTimer(time.Until(start.Add(st.Duration)))
	defer timer.Stop()
	var err error
	stopped := true
	select {
	case <-timer.C:
		stopped = false
	case <-s.stop:
		if g.abortCtx.Err() != nil {
			err = ErrAborted
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.closed.Store(true) // no hit passes the targeter from now on
	atk.Stop()
	end := time.Now()
	if open != nil {
		open.heldAtEnd(end.Sub(start))
	}

	g.mu.Lock()
	g.running = false
	g.cur = nil
	g.windows = append(g.windows, Window{
		Stage: idx, Name: st.Name, Stopped: stopped,
		Concurrency: st.Concurrency, Workers: workers,
		label: st.String(), start: s.startOff, end: end.Sub(g.epoch),
	})
	g.mu.Unlock()
	return err
}

// target is the stage's vegeta Targeter. The body is not set here: vegeta
// does not tell a targeter the sequence number it gave the hit, so the timing
// transport sets the body of the X-Vegeta-Seq it finds.
func (s *stage) target(t *vegeta.Target) error {
	if t == nil {
		return vegeta.ErrNilTarget
	}
	if s.closed.Load() {
		return vegeta.ErrNoTargets // vegeta stops the attack without sending
	}
	t.Method = http.MethodPost
	t.URL = s.g.url
	t.Header = s.g.header // vegeta copies it into each request
	t.Body = nil
	return nil
}

// track drains the stage's vegeta results in the background (their content
// is ignored: the records are the truth) and keeps the stage counted active
// (Run counted it before the attack started) until vegeta closes them,
// which it does after the stage's last request ended.
func (g *Generator) track(results <-chan *vegeta.Result, open *gatedPacer) {
	go func() {
		for range results {
			if open != nil && open.cap > 0 {
				open.drainedOne()
			}
		}
		g.mu.Lock()
		g.active--
		if g.active == 0 {
			close(g.idle)
			g.idle = nil
		}
		g.mu.Unlock()
	}()
}

// gatedPacer wraps a stage's pacer: it stops once the stage is closed, and
// under an open loop with a MaxInFlight cap it counts the hits the cap held
// back. Pace is only called by vegeta's single pacing goroutine.
type gatedPacer struct {
	s     *stage
	p     vegeta.Pacer  // the stage's schedule (open loop, s.sched) or closedLoop
	cap   uint64        // 0: no cap, nothing to count; set for an open loop only
	shift time.Duration // how late vegeta began after the stage's given start: added to its elapsed
	due   time.Duration // with cap: when the hit the last Pace paced was due (only Pace uses it)

	mu        sync.Mutex
	delivered uint64        // hits vegeta handed to a worker (as of the last Pace)
	drained   uint64        // vegeta results received: a worker is busy from its hit until its result is drained
	full      bool          // every worker is busy: delivered − drained ≥ cap
	fullEnd   time.Duration // when the workers last stopped being all busy, since the stage start; −1: never
}

var _ vegeta.Pacer = (*gatedPacer)(nil)

// Pace implements vegeta.Pacer. vegeta calls it once per hit, in order:
// Pace(elapsed, hits) paces hit `hits`, right after vegeta handed hit
// `hits`−1 to a worker. With a cap, that hit found the cap reached when it
// went out late (more than capSlack after it was due) and every worker was
// busy at some point since it was due: vegeta had to wait for one.
func (p *gatedPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if p.s.closed.Load() {
		return 0, true
	}
	elapsed += p.shift
	if p.cap == 0 {
		return p.p.Pace(elapsed, hits)
	}
	now := time.Since(p.s.start)
	prev := p.due // when hit `hits`−1 was due: the previous Pace paced it
	var wait time.Duration
	var stop bool
	p.due, wait, stop = paceDue(p.s.sched, elapsed, hits)
	p.mu.Lock()
	p.delivered = hits
	if hits > 0 && now-prev > capSlack && (p.full || p.fullEnd >= prev) {
		p.s.g.live.capReached.Add(1)
	}
	p.full = hits-min(hits, p.drained) >= p.cap
	p.mu.Unlock()
	return wait, stop
}

// drainedOne notes that a worker finished (called by the drain goroutine).
func (p *gatedPacer) drainedOne() {
	p.mu.Lock()
	p.drained++
	if p.full && p.delivered-min(p.delivered, p.drained) < p.cap {
		p.full = false
		p.fullEnd = time.Since(p.s.start)
	}
	p.mu.Unlock()
}

// heldAtEnd counts, when the stage has stopped sending after `sent`, the hits
// that were due by then but never went out because every worker was busy
// (vegeta was waiting for one). Called once the gate is closed.
func (p *gatedPacer) heldAtEnd(sent time.Duration) {
	if p.cap == 0 {
		return
	}
	p.mu.Lock()
	n, full, fullEnd := p.delivered, p.full, p.fullEnd
	p.mu.Unlock()
	if !full && fullEnd < p.s.sched.At(n) {
		return // a worker was free when the next hit came due: not the cap
	}
	if due := Due(p.s.sched, min(sent, p.s.du)); due > n {
		p.s.g.live.capReached.Add(due - n) // hits n … due−1
	}
}

// capSlack is how late a hit must go out, with every worker busy, to count as
// held back by the cap (not by scheduling noise).
const capSlack = time.Millisecond

// Rate implements vegeta.Pacer.
func (p *gatedPacer) Rate(elapsed time.Duration) float64 { return p.p.Rate(elapsed) }

// Stop stops sending in the running stage: Run returns nil at once, the
// requests in flight go on. It is a no-op between stages (the next stage runs
// in full). Safe from any goroutine.
func (g *Generator) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.cur; s != nil {
		s.closed.Store(true) // at once, before Run wakes up
		s.stopOnce.Do(func() { close(s.stop) })
	}
}

// Abort stops sending and cancels every request in flight now, through its
// context: they end with class measure.Canceled and still reach the sink.
// It is final: Run returns ErrAborted from then on.
func (g *Generator) Abort() { g.AbortAs(measure.Canceled, "aborted") }

// AbortAs is Abort with the class and message the aborted requests are
// recorded with, e.g. measure.Timeout when the caller gave up waiting for
// a target that does not answer. The first abort's class wins.
func (g *Generator) AbortAs(class measure.ErrClass, message string) {
	g.abort(&abortCause{class: class, msg: message}) // before Stop: Run then tells an abort from a stop
	g.Stop()
}

// abortCause is why Abort ended the requests in flight.
type abortCause struct {
	class measure.ErrClass
	msg   string
}

func (a *abortCause) Error() string { return a.msg }

// Wait returns once nothing is in flight (every stage's last request ended
// and reached the sink), or with ctx.Err() when ctx ends first.
func (g *Generator) Wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		ch := g.idle
		g.mu.Unlock()
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Live returns a snapshot of the counters; cheap (atomic loads).
func (g *Generator) Live() Live {
	return Live{
		Sent:         g.live.sent.Load(),
		Done:         g.live.done.Load(),
		Errors:       g.live.errors.Load(),
		InFlight:     g.live.inFlight.Load(),
		PeakInFlight: g.live.peakInFlight.Load(),
		CapReached:   g.live.capReached.Load(),
	}
}

// Windows returns how each stage run so far ran, in order.
func (g *Generator) Windows() []Window {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Window(nil), g.windows...)
}

// finish counts a finished request and hands it to the sink.
func (g *Generator) finish(rec *measure.Request) {
	g.live.inFlight.Add(-1)
	if rec.Failed() {
		g.live.errors.Add(1)
	}
	g.live.done.Add(1)
	if rec.Message != "" && g.cfg.Redact != nil {
		rec.Message = g.cfg.Redact(rec.Message)
	}
	g.sink(rec)
}
