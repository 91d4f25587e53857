//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http/httputil"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// A report as `vegeta report -type=json` (v12.13.0) prints it.
const vegetaJSON = `{"latencies":{"total":2381830000,"mean":238183,"50th":201544,"90th":312087,"95th":402771,"99th":1000517,"max":8219933,"min":98211},"bytes_in":{"total":3000000,"mean":300},"bytes_out":{"total":1040000,"mean":104},"earliest":"2025-01-01T10:00:00.000049Z","latest":"2025-01-01T10:00:09.999949Z","end":"2025-01-01T10:00:10.000150Z","duration":9999900000,"wait":201000,"requests":10000,"rate":1000.01,"throughput":999.99,"success":1,"status_codes":{"200":10000},"errors":[]}`

func TestParseVegetaReport(t *testing.T) {
	r, err := parseVegetaReport([]byte(vegetaJSON))
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 10000 || r.Rate != 1000.01 || r.Success != 1 || r.StatusCodes["200"] != 10000 {
		t.Fatalf("parsed %+v", r)
	}
	if r.Latencies.P99 != 1000517 || r.Duration != 9999900000 {
		t.Fatalf("latencies/duration: %+v %d", r.Latencies, r.Duration)
	}
	o := outcome{Client: "vegeta", Target: 1000, Duration: 10 * time.Second}
	vegetaOutcome(&o, r)
	if o.Requests != 10000 || o.OK != 10000 || o.Errors != "" || o.Achieved != 1000.01 {
		t.Fatalf("outcome %+v", o)
	}
	if o.P99MS < 1.0 || o.P99MS > 1.01 {
		t.Fatalf("p99 %v ms, want 1.0005", o.P99MS)
	}
	if pass, why := o.Pass(0.99, 50); !pass {
		t.Fatalf("want pass, got %s", why)
	}

	// Failures: transport errors (code 0) and a 5xx, with the error strings.
	bad := strings.Replace(vegetaJSON, `"success":1,"status_codes":{"200":10000},"errors":[]`,
		`"success":0.97,"status_codes":{"0":200,"200":9700,"503":100},"errors":["Post \"http://127.0.0.1:1/v1/completions\": dial tcp: connection refused","503 Service Unavailable"]`, 1)
	r, err = parseVegetaReport([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	o = outcome{Client: "vegeta", Target: 1000, Duration: 10 * time.Second}
	vegetaOutcome(&o, r)
	if o.OK != 9700 || !strings.HasPrefix(o.Errors, "status_0=200, status_503=100; 2 distinct errors") {
		t.Fatalf("outcome %+v", o)
	}
	if pass, _ := o.Pass(0.99, 50); pass {
		t.Fatal("a run with errors passed")
	}

	if _, err := parseVegetaReport([]byte("Requests [total] 10")); err == nil {
		t.Fatal("the text report parsed as JSON")
	}
}

func TestParseScaleoutReport(t *testing.T) {
	// Reports as scaleout writes them (timeline.WriteJSON), not as this
	// suite would like them to be.
	written := func(r *timeline.Report) *timeline.Report {
		var b bytes.Buffer
		if err := timeline.WriteJSON(&b, r); err != nil {
			t.Fatal(err)
		}
		got, err := parseScaleoutReport(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	f := func(v float64) *float64 { return &v }
	open := &timeline.Report{Load: timeline.LoadReport{Requests: 20000, OK: 19990, Errors: map[string]int64{"timeout": 4, "http_503": 6},
		AchievedRPS: 1999.7, TargetRPS: 2000, LoadS: 10.001,
		SendLag: measure.Summary{P50: f(0.1), P99: f(1.5), Max: f(9), N: 20000},
		E2E:     measure.Summary{P50: f(2), P99: f(8), Max: f(20), N: 19990}}}
	o := outcome{Client: "scaleout", Target: 2000, Duration: 10 * time.Second}
	scaleoutOutcome(&o, written(open))
	if o.Requests != 20000 || o.OK != 19990 || o.SendLagMS != 1.5 || o.P99MS != 8 || o.Errors != "http_503=6, timeout=4" {
		t.Fatalf("outcome %+v", o)
	}
	if o.ClientLimited != "" {
		t.Fatalf("client limited: %q", o.ClientLimited)
	}
	// A closed loop has no schedule: its send lag is an empty summary.
	closed := &timeline.Report{ClientLimited: &timeline.ClientLimited{Stages: []timeline.LimitedStage{
		{Stage: "rate", AchievedRPS: 9000, TargetRPS: 16000, Reasons: []string{"CPU: the client used 1.95 of its 2 cores"}}}}}
	o = outcome{}
	scaleoutOutcome(&o, written(closed))
	if o.SendLagMS != -1 {
		t.Fatalf("no send lag measured: %v, want -1", o.SendLagMS)
	}
	if o.ClientLimited != "CPU: the client used 1.95 of its 2 cores" {
		t.Fatalf("client limited: %q", o.ClientLimited)
	}
}

func TestPass(t *testing.T) {
	base := outcome{Target: 1000, Duration: 10 * time.Second, Requests: 10000, OK: 10000, Achieved: 1000}
	cases := []struct {
		name string
		mod  func(*outcome)
		want bool
	}{
		{"on target", func(*outcome) {}, true},
		{"99% is enough", func(o *outcome) { o.Requests, o.OK, o.Achieved = 9900, 9900, 990 }, true},
		{"rate short", func(o *outcome) { o.Achieved = 989 }, false},
		{"count short", func(o *outcome) { o.Requests, o.OK = 9899, 9899 }, false},
		{"one error", func(o *outcome) { o.OK = 9999 }, false},
		{"error classes", func(o *outcome) { o.Errors = "timeout=1" }, false},
		{"process failed", func(o *outcome) { o.Fail = "killed" }, false},
		{"nothing sent", func(o *outcome) { o.Requests, o.OK = 0, 0 }, false},
		{"late sends", func(o *outcome) { o.SendLagMS = 50.1 }, false},
		{"sends on time", func(o *outcome) { o.SendLagMS = 50 }, true},
		{"lag unknown", func(o *outcome) { o.SendLagMS = -1 }, true},
	}
	for _, c := range cases {
		o := base
		c.mod(&o)
		if got, why := o.Pass(0.99, 50); got != c.want {
			t.Errorf("%s: pass %t (%s), want %t", c.name, got, why, c.want)
		}
	}
}

// runSearch drives a search against a client whose capacity is cap.
func runSearch(s *rateSearch, capacity float64) []float64 {
	var tried []float64
	for len(tried) < 100 {
		r, ok := s.Next()
		if !ok {
			break
		}
		tried = append(tried, r)
		s.Record(r, r <= capacity)
	}
	return tried
}

func TestRateSearchDoublesThenBisects(t *testing.T) {
	s := &rateSearch{Start: 1000, Floor: 100, Max: 256000, Tol: 0.05, Step: 10}
	tried := runSearch(s, 13000)
	want := []float64{1000, 2000, 4000, 8000, 16000, 12000, 14000, 13000, 13500}
	if !equal(tried, want) {
		t.Fatalf("tried %v, want %v", tried, want)
	}
	if s.Best() != 13000 || s.fail != 13500 {
		t.Fatalf("best %v fail %v", s.Best(), s.fail)
	}
	if (s.fail-s.pass)/s.pass > 0.05 {
		t.Fatal("stopped before the tolerance")
	}
}

func TestRateSearchProperties(t *testing.T) {
	for _, capacity := range []float64{150, 999, 1000, 1001, 4321, 9999, 10000, 25000, 77777, 255000} {
		s := &rateSearch{Start: 1000, Floor: 100, Max: 256000, Tol: 0.05, Step: 10}
		tried := runSearch(s, capacity)
		if len(tried) > 20 {
			t.Errorf("capacity %v: %d probes", capacity, len(tried))
		}
		best := s.Best()
		if best > capacity {
			t.Errorf("capacity %v: best %v above it", capacity, best)
		}
		// Within the tolerance (or the rounding step) of the true capacity.
		if best < capacity*(1-0.05)-10 {
			t.Errorf("capacity %v: best %v too low (tried %v)", capacity, best, tried)
		}
		seen := map[float64]bool{}
		for _, r := range tried {
			if seen[r] {
				t.Errorf("capacity %v: rate %v tried twice (%v)", capacity, r, tried)
			}
			seen[r] = true
		}
	}
}

func TestRateSearchEdges(t *testing.T) {
	// Everything fails: halve down to the floor, then give up.
	s := &rateSearch{Start: 1000, Floor: 100, Max: 256000, Tol: 0.05, Step: 10}
	tried := runSearch(s, 0)
	if !equal(tried, []float64{1000, 500, 250, 130}) || s.Best() != 0 {
		t.Fatalf("tried %v best %v", tried, s.Best())
	}
	if !strings.HasPrefix(s.Bounds(), "every rate failed") {
		t.Fatal(s.Bounds())
	}
	// Everything passes: stop at the maximum.
	s = &rateSearch{Start: 1000, Floor: 100, Max: 5000, Tol: 0.05, Step: 10}
	tried = runSearch(s, 1e9)
	if !equal(tried, []float64{1000, 2000, 4000, 5000}) || s.Best() != 5000 {
		t.Fatalf("tried %v best %v", tried, s.Best())
	}
	if !strings.Contains(s.Bounds(), "maximum") {
		t.Fatal(s.Bounds())
	}
	// A noisy client: a pass above a failure never moves fail up.
	s = &rateSearch{Start: 1000, Tol: 0.05}
	s.Record(1000, true)
	s.Record(2000, false)
	s.Record(1500, true)
	s.Record(1750, false)
	s.Record(1600, true)
	s.Record(1900, true) // noise: above the lowest failure
	if s.pass != 1900 || s.fail != 1750 {
		t.Fatalf("pass %v fail %v", s.pass, s.fail)
	}
	if _, ok := s.Next(); ok {
		t.Fatal("a pass above the lowest failure should end the search, not loop")
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestScenarioParses(t *testing.T) {
	for _, l := range []load{
		{Name: "rate", URL: "http://127.0.0.1:40000", MaxTokens: 1, Rate: 12340, Duration: 10 * time.Second, Timeout: 30 * time.Second},
		{Name: "rss", URL: "http://127.0.0.1:40000", Stream: true, MaxTokens: 32, Concurrency: 10000, Duration: 30 * time.Second, Timeout: 150 * time.Second},
	} {
		s, err := scenario.Parse("perf.yaml", []byte(scenarioYAML(l)), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("%s:\n%s\n%v", l.Name, scenarioYAML(l), err)
		}
		if s, err = s.Resolve(scenario.Context{}); err != nil {
			t.Fatal(err)
		}
		st := s.Load[0]
		if s.Target.Stream != l.Stream || s.Target.Model != serveModel || s.RequestTimeout != l.Timeout ||
			st.Duration != l.Duration || st.RateFrom != l.Rate || st.Concurrency != l.Concurrency || s.MaxInFlight < l.Concurrency ||
			s.Request.MaxTokens.Value != l.MaxTokens || s.Request.PromptTokens.Value != promptTokens || s.Request.Seed != bodySeed ||
			s.Observe.Source() {
			t.Fatalf("%s: scenario %+v stage %+v", l.Name, s, st)
		}
	}
}

func TestVegetaTargets(t *testing.T) {
	b, err := bodies(true, 64)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(vegetaTargets("http://127.0.0.1:1", b)), []byte("\n"))
	if len(lines) != b.Len() {
		t.Fatalf("%d targets for %d bodies", len(lines), b.Len())
	}
	var tg struct {
		Method, URL, Body string
		Header            map[string][]string
	}
	if err := json.Unmarshal(lines[3], &tg); err != nil {
		t.Fatal(err)
	}
	body, _ := base64.StdEncoding.DecodeString(tg.Body)
	if tg.Method != "POST" || tg.URL != "http://127.0.0.1:1/v1/completions" || !bytes.Equal(body, b.Body(3)) ||
		tg.Header["Content-Type"][0] != "application/json" || !isStream(body) {
		t.Fatalf("target %+v body %s", tg, body)
	}
	args := strings.Join(vegetaAttackArgs(load{Rate: 2000, Duration: 10 * time.Second, Timeout: 30 * time.Second}, "t", "r"), " ")
	if args != "attack -duration=10s -targets=t -format=json -max-body=0 -timeout=30s -output=r -rate=2000/s" {
		t.Fatal(args)
	}
}

func TestServerResponses(t *testing.T) {
	r := render(serveConfig{Tokens: 64, Prompt: 8})
	// The stream de-chunks to 64 content events, the usage event and [DONE].
	head, rest, ok := bytes.Cut(r.stream, []byte("\r\n\r\n"))
	if !ok || !bytes.Contains(head, []byte("Transfer-Encoding: chunked")) {
		t.Fatalf("head %q", head)
	}
	sse, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(rest)))
	if err != nil {
		t.Fatal(err)
	}
	events := strings.Split(strings.TrimSuffix(string(sse), "\n\n"), "\n\n")
	if len(events) != 66 || events[65] != "data: [DONE]" {
		t.Fatalf("%d events, last %q", len(events), events[len(events)-1])
	}
	for i, ev := range events[:65] {
		var c struct {
			Choices []struct{ Text string }
			Usage   *struct{ PromptTokens, CompletionTokens int } `json:"usage"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &c); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if i < 64 && (len(c.Choices) != 1 || c.Usage != nil) || i == 64 && (len(c.Choices) != 0 || c.Usage == nil) {
			t.Fatalf("event %d: %+v", i, c)
		}
	}
	// The delayed stream's parts add up to the same bytes.
	delayed := append([]byte(nil), r.first...)
	for _, e := range r.events[1:] {
		delayed = append(delayed, e...)
	}
	if !bytes.Equal(append(delayed, r.tail...), r.stream) {
		t.Fatal("the delayed stream differs from the one-write stream")
	}
	var nonStream struct {
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	_, body, _ := bytes.Cut(r.json, []byte("\r\n\r\n"))
	if err := json.Unmarshal(body, &nonStream); err != nil || nonStream.Usage.PromptTokens != 8 || nonStream.Usage.CompletionTokens != 1 {
		t.Fatalf("non-streamed body %s: %v", body, err)
	}
}

func TestReadRequest(t *testing.T) {
	in := "POST /v1/completions HTTP/1.1\r\nHost: x\r\ncontent-length: 16\r\n\r\n{\"stream\": true}" +
		"GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n" +
		"POST /v1/completions HTTP/1.1\r\nContent-Length: 17\r\n\r\n{\"stream\":false} " +
		"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	var body []byte
	want := []request{
		{route: routeCompletions, length: 16, stream: true},
		{route: routeModels, close: true},
		{route: routeCompletions, length: 17},
	}
	for i, w := range want {
		got, err := readRequest(br, &body)
		if err != nil || got != w {
			t.Fatalf("request %d: %+v, %v; want %+v", i, got, err, w)
		}
	}
	if _, err := readRequest(br, &body); err != errBadRequest {
		t.Fatalf("chunked request body: %v, want errBadRequest", err)
	}
	if _, err := readRequest(bufio.NewReader(strings.NewReader("")), &body); err != io.EOF {
		t.Fatalf("closed connection: %v", err)
	}
}

func TestIsStream(t *testing.T) {
	for in, want := range map[string]bool{
		`{"model":"m","stream":true}`:            true,
		`{"stream" : true, "max_tokens": 1}`:     true,
		`{"model":"m","stream":false}`:           false,
		`{"model":"m"}`:                          false,
		`{"stream_options":{"include_usage":1}}`: false,
	} {
		if got := isStream([]byte(in)); got != want {
			t.Errorf("isStream(%s) = %t", in, got)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -12000: "-12,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSendLagP99(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	const rate = 1000 // one hit a millisecond
	var seqs []uint64
	var sent []time.Time
	for i := range 1000 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		if i >= 985 { // the last 15 hits go out 20 ms late
			at = at.Add(20 * time.Millisecond)
		}
		seqs = append(seqs, uint64(i))
		sent = append(sent, at)
	}
	// Results arrive in completion order, not sequence order.
	seqs[0], seqs[500] = seqs[500], seqs[0]
	sent[0], sent[500] = sent[500], sent[0]
	if got := sendLagP99(seqs, sent, rate); got != 20 {
		t.Fatalf("p99 %v ms, want 20", got)
	}
	// On time everywhere but the first hit, which went out 5 ms late: the
	// start is inferred from the others, so that hit alone is late.
	for i := range sent {
		sent[i] = t0.Add(time.Duration(seqs[i]) * time.Millisecond)
	}
	sent[500] = sent[500].Add(5 * time.Millisecond) // seq 0
	if got := sendLagP99(seqs, sent, rate); got != 0 {
		t.Fatalf("p99 %v ms, want 0 (one late hit in 1000)", got)
	}
	if got := sendLagP99(nil, nil, rate); got != -1 {
		t.Fatalf("no hits: %v", got)
	}
}

func TestRunAgain(t *testing.T) {
	cases := []struct {
		attempt                int
		pass, contended, retry bool
		want                   bool
	}{
		{1, true, false, true, false},   // passed
		{1, false, false, true, true},   // a first failure is checked once more
		{1, false, false, false, false}, // -retry=false
		{2, false, false, true, false},  // two clean failures: failed
		{2, false, true, true, true},    // the second failed on a busy machine: a third run
		{3, false, true, true, false},   // at most three
	}
	for _, c := range cases {
		if got := runAgain(c.attempt, c.pass, c.contended, c.retry); got != c.want {
			t.Errorf("runAgain(%+v) = %t", c, got)
		}
	}
	o := outcome{CPU: 5 * time.Second, ServerCPU: 2 * time.Second, MachineCPU: 10 * time.Second, MachineWall: 10 * time.Second}
	if o.OtherCPU() != 3*time.Second || !o.Contended() {
		t.Fatalf("other %s contended %t", o.OtherCPU(), o.Contended())
	}
	o.MachineCPU = 7*time.Second + 2*time.Second // 0.2 cores of others
	if o.Contended() {
		t.Fatal("0.2 cores of others counted as contended")
	}
}
