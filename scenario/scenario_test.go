package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/internal/yamlread"
	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/measure"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

const full = `
name: gpu
target:
  url: http://gw:8080/v1
  api: chat
  model: m
  stream: false
  headers:
    Authorization: Bearer ${TOKEN}
    X-Team: ${TEAM:-serving}
request:
  prompt_tokens: {min: 64, max: 256}
  max_tokens: {mean: 100, stddev: 10, min: 50, max: 150}
  ignore_eos: false
  temperature: 0.5
  seed: 7
load:
  - {name: warm, duration: 30s, rate: 1/s}
  - name: ramp
    duration: 2m
    rate: 1/s..12/s
    arrivals: poisson
  - {name: hold, duration: 1m, concurrency: 32, until: "desired >= 3"}
max_in_flight: 500
request_timeout: 2m
threshold: 4
observe:
  prometheus: http://prom:9090
  token: ${PROM}
  interval: 2s
  vllm: '{namespace="serving"}'
  hpa: serving/keda-hpa-raw-vllm
  deployment: serving/raw-vllm
  series:
    queue: sum(vllm:num_requests_waiting)
    ready: kube_deployment_status_replicas_ready{deployment="x"}
expect:
  - desired >= 2 within 2m
guard: repause
slo: {ttft: 2s, tpot: 100ms, e2e: 30s}
`

func TestParseFull(t *testing.T) {
	s, err := Parse("s.yaml", []byte(full), env(map[string]string{"TOKEN": "sekret", "PROM": "ptok"}))
	if err != nil {
		t.Fatal(err)
	}
	if s, err = s.Resolve(Context{}); err != nil {
		t.Fatal(err)
	}
	if s.Name != "gpu" || s.Target.URL != "http://gw:8080" || s.Target.API != "chat" || s.Target.Model != "m" || s.Target.Stream {
		t.Errorf("target = %+v", s.Target)
	}
	wantH := []Header{{"Authorization", "Bearer sekret"}, {"X-Team", "serving"}}
	if len(s.Target.Headers) != 2 || s.Target.Headers[0] != wantH[0] || s.Target.Headers[1] != wantH[1] {
		t.Errorf("headers = %+v", s.Target.Headers)
	}
	q := s.Request
	if q.PromptTokens != (measure.Lengths{Kind: "uniform", Min: 64, Max: 256}) {
		t.Errorf("prompt_tokens = %+v", q.PromptTokens)
	}
	if q.MaxTokens != (measure.Lengths{Kind: "normal", Mean: 100, StdDev: 10, Min: 50, Max: 150}) {
		t.Errorf("max_tokens = %+v", q.MaxTokens)
	}
	if q.IgnoreEOS || q.Temperature == nil || *q.Temperature != 0.5 || q.Seed != 7 {
		t.Errorf("request = %+v", q)
	}
	if len(s.Load) != 3 {
		t.Fatalf("load = %+v", s.Load)
	}
	if got := s.Load[0]; got.Name != "warm" || got.Duration != 30*time.Second || got.RateFrom != 1 || got.RateTo != 1 || got.Poisson {
		t.Errorf("load[0] = %+v", got)
	}
	if got := s.Load[1]; got.RateFrom != 1 || got.RateTo != 12 || !got.Poisson || got.Duration != 2*time.Minute {
		t.Errorf("load[1] = %+v", got)
	}
	if got := s.Load[2]; got.Concurrency != 32 || got.Until == nil || got.Until.Text != "desired >= 3" || got.Until.Line != 23 || got.Until.Col != 57 {
		t.Errorf("load[2] = %+v until %+v", got, got.Until)
	}
	if s.MaxInFlight != 500 || s.RequestTimeout != 2*time.Minute || s.Threshold != 4 || s.Guard != "repause" {
		t.Errorf("scalars: %d %s %g %q", s.MaxInFlight, s.RequestTimeout, s.Threshold, s.Guard)
	}
	if s.SLO != (SLO{TTFT: 2 * time.Second, TPOT: 100 * time.Millisecond, E2E: 30 * time.Second}) {
		t.Errorf("slo = %+v", s.SLO)
	}
	o := s.Observe
	if o.Prometheus != "http://prom:9090" || o.Token != "ptok" || o.Interval != 2*time.Second || o.After != DefaultAfter {
		t.Errorf("observe = %+v", o)
	}
	want := []measure.Series{
		{Name: "waiting", Query: `sum(vllm:num_requests_waiting{namespace="serving"})`},
		{Name: "running", Query: `sum(vllm:num_requests_running{namespace="serving"})`},
		{Name: "kv_cache", Query: `avg(vllm:kv_cache_usage_perc{namespace="serving"})`},
		{Name: "desired", Query: `max(kube_horizontalpodautoscaler_status_desired_replicas{namespace="serving",horizontalpodautoscaler="keda-hpa-raw-vllm"})`},
		{Name: "current", Query: `max(kube_horizontalpodautoscaler_status_current_replicas{namespace="serving",horizontalpodautoscaler="keda-hpa-raw-vllm"})`},
		{Name: "ready", Query: `kube_deployment_status_replicas_ready{deployment="x"}`},
		{Name: "queue", Query: "sum(vllm:num_requests_waiting)"},
	}
	if len(o.Series) != len(want) {
		t.Fatalf("series = %+v", o.Series)
	}
	for i := range want {
		if o.Series[i] != want[i] {
			t.Errorf("series[%d] = %+v, want %+v", i, o.Series[i], want[i])
		}
	}
	if len(s.Expect) != 1 || s.Expect[0].Text != "desired >= 2 within 2m" || s.Expect[0].Line != 38 || s.Expect[0].Col != 5 {
		t.Errorf("expect = %+v", s.Expect)
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse("dir/min.yaml", []byte("target: {url: 'http://127.0.0.1:8000/'}\nload:\n  - {duration: 10s, rate: 2/s}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s, err = s.Resolve(Context{}); err != nil {
		t.Fatal(err)
	}
	if s.Name != "min" || s.Target.API != "completions" || !s.Target.Stream || s.Target.URL != "http://127.0.0.1:8000" {
		t.Errorf("defaults: %+v", s)
	}
	if s.Request.PromptTokens != measure.Fixed(128) || s.Request.MaxTokens != measure.Fixed(64) || !s.Request.IgnoreEOS {
		t.Errorf("request defaults: %+v", s.Request)
	}
	if s.Load[0].Name != "stage1" || s.Threshold != 5 || s.Observe.Interval != 5*time.Second || s.Observe.After != 0 {
		t.Errorf("stage/observe defaults: %+v %+v", s.Load[0], s.Observe)
	}
	if len(s.Observe.Series) != 0 {
		t.Errorf("series without shorthands: %+v", s.Observe.Series)
	}
	if s.ClientCheck != (ClientCheck{MaxSendLag: 50 * time.Millisecond, MaxShortfall: 0.05}) {
		t.Errorf("client_check defaults: %+v", s.ClientCheck)
	}
	s, err = Parse("c.yaml", []byte("client_check: {max_send_lag: 250ms, max_shortfall: 10%}\nload: [{duration: 10s, rate: 2/s}]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientCheck != (ClientCheck{MaxSendLag: 250 * time.Millisecond, MaxShortfall: 0.1}) {
		t.Errorf("client_check: %+v", s.ClientCheck)
	}
}

// Every bad input names the file, the line, the column and the field, and
// says what would be right.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // each a substring of one error line, in order
	}{
		{"typo top", "targte: {url: http://x}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{"s.yaml:1:1: targte: unknown field (did you mean target?)"}},
		{"typo nested", "load:\n  - {duration: 1s, rat: 1/s}\n",
			[]string{"s.yaml:2:5: load[0]: give rate:", "s.yaml:2:20: load[0].rat: unknown field (did you mean rate?)"}},
		{"bad rate", "load:\n  - {duration: 1s, rate: 12/m/s}\n",
			[]string{`s.yaml:2:26: load[0].rate: "12/m/s" is not a rate (try 12/s, 12/m or 12/h)`}},
		{"rate no unit", "load:\n  - {duration: 1s, rate: 12}\n",
			[]string{`load[0].rate: "12" has no unit (try 12/s)`}},
		{"bad ramp", "load:\n  - {duration: 1s, rate: 1/s..x}\n",
			[]string{`load[0].rate: ramp "1/s..x": end "x" is not a rate`}},
		{"duration no unit", "load:\n  - {duration: 30, rate: 1/s}\n",
			[]string{`s.yaml:2:16: load[0].duration: "30" has no unit (try 30s)`}},
		{"missing duration", "load:\n  - {rate: 1/s}\n",
			[]string{"s.yaml:2:5: load[0].duration: missing"}},
		{"both rate and conc", "load:\n  - {duration: 1s, rate: 1/s, concurrency: 3}\n",
			[]string{"load[0].concurrency: give rate (open loop) or concurrency (closed loop), not both"}},
		{"no load", "target: {url: http://x}\n",
			[]string{"s.yaml: load: a scenario needs at least one stage"}},
		{"misspelt load", "target: {url: http://x}\nlaod: [{duration: 1s, rate: 1/s}]\n",
			[]string{"s.yaml:2:1: laod: unknown field (did you mean load?)"}},
		{"bad client_check", "client_check: {max_send_lag: 0s, max_shortfall: 120%, lag: 1s}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{"client_check.max_send_lag: must be above 0", `client_check.max_shortfall: "120%" is not a share from 0 to below 100%`, "client_check.lag: unknown field"}},
		{"bad api", "target: {api: embeddings}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{`s.yaml:1:15: target.api: "embeddings" is not an API (completions or chat)`}},
		{"unset env", "target: {headers: {Authorization: 'Bearer ${NOPE}'}}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{"target.headers.Authorization: ${NOPE} is not set in the environment (export NOPE=…"}},
		{"bad hpa", "observe: {hpa: keda-hpa-x}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{`observe.hpa: "keda-hpa-x" is not NAMESPACE/NAME`}},
		{"duplicate key", "load: [{duration: 1s, rate: 1/s}]\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{"s.yaml:2:1: load: given twice (the first is on line 1)"}},
		{"dup stage names", "load:\n  - {name: a, duration: 1s, rate: 1/s}\n  - {name: a, duration: 1s, rate: 1/s}\n",
			[]string{`load[1].name: "a" is also the name of load[0]`}},
		{"syntax", "load: [\n", []string{"s.yaml:2:1: not valid YAML: did not find expected node content"}},
		{"two documents", "load: [{duration: 1s, rate: 1/s}]\n---\nload: []\n", []string{"s.yaml:3:1: a second YAML document"}},
		{"empty", "", []string{"s.yaml: the file is empty"}},
		{"bad lengths", "request: {prompt_tokens: 300..100}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{`request.prompt_tokens: "300..100" is not a length range (try 64..256)`}},
		{"bad arrivals", "load: [{duration: 1s, rate: 1/s, arrivals: bursty}]\n",
			[]string{`load[0].arrivals: "bursty" is not an arrival process (uniform or poisson)`}},
		{"bad bool", "target: {stream: maybe}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{`target.stream: "maybe" is not true or false`}},
		{"zero rate", "load: [{duration: 1s, rate: 0/s}]\n",
			[]string{"load[0].rate: a rate of 0 sends nothing"}},
		{"bad guard", "guard: always\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{`guard: "always" is not a guard (try repause or act)`}},
		{"missing prompts file", "request: {prompts: nope.jsonl}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{"request.prompts: cannot read nope.jsonl: no such file or directory"}},
		{"sample without file", "request: {prompts_sample: 100}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{"s.yaml:1:27: request.prompts_sample: samples a prompts file: give request.prompts too"}},
		{"sample typo", "request: {prompt_sample: 100}\nload: [{duration: 1s, rate: 1/s}]\n",
			[]string{"request.prompt_sample: unknown field (did you mean prompts_sample?)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(c.yaml), env(nil))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("err = %v, want Errors", err)
			}
			if len(es) != len(c.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(c.want), err)
			}
			for i, w := range c.want {
				if !strings.Contains(es[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, es[i].Error(), w)
				}
			}
		})
	}
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	_, err := Parse("s.yaml", []byte("target: {url: 'http://u:${PW}@gw', headers: {X: 1}}\nload: [{duration: 1s, rate: x}]\n"), env(map[string]string{"PW": "hunter2"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	s, err := Parse("s.yaml", []byte("target: {url: 'http//u:${PW}@gw'}\nload: [{duration: 1s, rate: 1/s}]\n"), env(map[string]string{"PW": "hunter2"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Resolve(Context{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("check err = %v", err)
	}
}

func TestOverrides(t *testing.T) {
	s, err := Parse("s.yaml", []byte("target: {url: http://a}\nobserve: {scrape: [http://m/metrics], hpa: ns/h}\nload: [{duration: 1s, rate: 1/s}]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	after := 90 * time.Second
	if err := s.Apply(Overrides{Target: "http://b:1", Model: "x", Prometheus: "http://p:9090", Interval: time.Second, After: &after, Expect: []string{"ready >= 2"}}); err != nil {
		t.Fatal(err)
	}
	if s, err = s.Resolve(Context{}); err != nil {
		t.Fatal(err)
	}
	if s.Target.URL != "http://b:1" || s.Target.Model != "x" || s.Observe.Prometheus != "http://p:9090" || s.Observe.Scrape != nil {
		t.Errorf("after overrides: %+v %+v", s.Target, s.Observe)
	}
	if s.Observe.Interval != time.Second || s.Observe.After != 90*time.Second || len(s.Expect) != 1 || s.Expect[0].File != "--expect[0]" {
		t.Errorf("after overrides: %+v %+v", s.Observe, s.Expect)
	}

	s, _ = Parse("s.yaml", []byte("load: [{duration: 1s, rate: 1/s}]\n"), env(nil))
	_ = s.Apply(Overrides{Target: "ftp://x"})
	_, err = s.Resolve(Context{})
	if err == nil || !strings.Contains(err.Error(), `flag: --target: "ftp://x" is not an http(s) URL`) {
		t.Errorf("bad --target: %v", err)
	}
	s, _ = Parse("s.yaml", []byte("load: [{duration: 1s, rate: 1/s}]\n"), env(nil))
	_, err = s.Resolve(Context{})
	if err == nil || !strings.Contains(err.Error(), "target.url: missing") {
		t.Errorf("no target: %v", err)
	}
}

func TestDecodeSim(t *testing.T) {
	type replicas struct {
		Min int32 `yaml:"min"`
		Max int32 `yaml:"max"`
	}
	type cfg struct {
		Model    string        `yaml:"model"`
		TTFT     time.Duration `yaml:"ttft"`
		Slowdown float64       `yaml:"batch_slowdown"`
		Paused   bool          `yaml:"paused"`
		Replicas replicas      `yaml:"replicas"`
		Seed     uint64        `yaml:"seed"`
	}
	s, err := Parse("s.yaml", []byte("load: [{duration: 1s, rate: 1/s}]\nsim:\n  ttft: 50ms\n  replicas: {max: 5}\n  batch_slowdown: 0.1\n  paused: yes\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg{Model: "m", Replicas: replicas{Min: 1, Max: 2}}
	if err := s.DecodeSim(&c); err != nil {
		t.Fatal(err)
	}
	if c != (cfg{Model: "m", TTFT: 50 * time.Millisecond, Slowdown: 0.1, Paused: true, Replicas: replicas{Min: 1, Max: 5}}) {
		t.Errorf("decoded %+v", c)
	}
	s, _ = Parse("s.yaml", []byte("load: [{duration: 1s, rate: 1/s}]\nsim:\n  ttf: 50ms\n  replicas: {max: lots}\n"), env(nil))
	err = s.DecodeSim(&c)
	if err == nil || !strings.Contains(err.Error(), "s.yaml:3:3: sim.ttf: unknown field (did you mean ttft?)") ||
		!strings.Contains(err.Error(), `s.yaml:4:19: sim.replicas.max: "lots" is not a whole number`) {
		t.Errorf("err = %v", err)
	}
}

func TestParseRate(t *testing.T) {
	cases := []struct {
		in       string
		from, to float64
		err      bool
	}{
		{"10/s", 10, 10, false}, {"600/m", 10, 10, false}, {"3600/h", 1, 1, false}, {"0.5/s", .5, .5, false},
		{"1/s..12/s", 1, 12, false}, {"1..12/s", 1, 12, false}, {"12/s..1/s", 12, 1, false},
		{"x/s", 0, 0, true}, {"10/d", 0, 0, true}, {"-1/s", 0, 0, true}, {"10", 0, 0, true},
	}
	for _, c := range cases {
		from, to, err := ParseRateRange(c.in)
		if (err != nil) != c.err || from != c.from || to != c.to {
			t.Errorf("%q → %g %g %v", c.in, from, to, err)
		}
	}
	for in, want := range map[float64]string{10: "10/s", 0.5: "30/m", 1.0 / 3600: "1/h", 2.5: "2.5/s"} {
		if got := FormatRate(in); got != want {
			t.Errorf("FormatRate(%g) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{45 * time.Second: "45s", 90 * time.Second: "1m30s", time.Hour + 5*time.Minute: "1h5m", 2 * time.Minute: "2m"} {
		if got := FormatDuration(in); got != want {
			t.Errorf("FormatDuration(%s) = %s, want %s", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("load: [{duration: 1s, rate: 1/s..2/s}]\nsim: {}\n"))
	f.Add([]byte("load:\n  - &a {duration: 1s, rate: 1/s}\n  - *a\n"))
	f.Add([]byte("observe:\n  series:\n   00:"))
	f.Add([]byte("target:\n  headers:\n    X:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.yaml", data, env(map[string]string{"TOKEN": "t", "PROM": "p"}))
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not Errors: %v", err)
			}
			for _, e := range es {
				if e.File != "f.yaml" || e.Msg == "" {
					t.Fatalf("error without file or message: %#v", e)
				}
			}
			return
		}
		if len(s.Load) == 0 {
			t.Fatal("a scenario without stages parsed")
		}
		for _, st := range s.Load {
			if st.Duration <= 0 || (st.Concurrency == 0 && st.RateFrom == 0 && st.RateTo == 0) {
				t.Fatalf("bad stage parsed: %+v", st)
			}
		}
		_, _ = s.Resolve(Context{})
	})
}

func TestPromptsSample(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.jsonl"), []byte(`{"prompt":"hi"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Parse(filepath.Join(dir, "s.yaml"), []byte("request: {prompts: p.jsonl, prompts_sample: 1_000}\nload: [{duration: 1s, rate: 1/s}]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.Request.Sample != 1000 || s.Request.Prompts != filepath.Join(dir, "p.jsonl") {
		t.Errorf("sample %d of %s", s.Request.Sample, s.Request.Prompts)
	}
}

func TestSecretsListsEveryCredential(t *testing.T) {
	s, err := Parse("s.yaml", []byte(`
target:
  url: 'http://u:gw-pass@gw?api_key=gw-key'
  headers: {Authorization: 'Bearer ${TOKEN}', X-Basic: 'Basic dXNlcjpiYXNpYy1wdw==', X-Pair: '${A}-${B:-bpart}'}
observe: {prometheus: 'http://p:prom-pass@prom:9090', token: '${PT}'}
load: [{duration: 1s, rate: 1/s}]
`), env(map[string]string{"TOKEN": "tok-123", "A": "apart", "PT": "prom-token"}))
	if err != nil {
		t.Fatal(err)
	}
	got := s.Secrets()
	for _, want := range []string{"tok-123", "Bearer tok-123", "user:basic-pw", "basic-pw", "apart", "bpart", "apart-bpart",
		"prom-token", "gw-pass", "gw-key", "prom-pass"} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets() lacks %q: %q", want, got)
		}
	}
	if slices.Contains(got, "gw") || slices.Contains(got, "u") {
		t.Errorf("Secrets() lists what is no secret: %q", got)
	}
}

// A scenario made from the flags alone has the defaults of an empty file,
// the flags, and no stages.
func TestFromFlags(t *testing.T) {
	s, err := FromFlags(Overrides{Target: "http://gw:8080/v1", Prometheus: "http://p:9090"})
	if err != nil {
		t.Fatal(err)
	}
	if s, err = s.Resolve(Context{HPA: "ns/h"}); err != nil {
		t.Fatal(err)
	}
	if s.Target.URL != "http://gw:8080" || s.Target.API != "completions" || s.Observe.Prometheus != "http://p:9090" ||
		s.Observe.Interval != DefaultInterval || len(s.Load) != 0 || len(s.Observe.Series) != 2 {
		t.Errorf("from flags: %+v %+v %d stages", s.Target, s.Observe, len(s.Load))
	}
	_, err = FromFlags(Overrides{Target: "http://gw", Prometheus: "http://p", Scrape: []string{"http://m/metrics"}})
	if err == nil || !strings.Contains(err.Error(), "flag: --scrape: give --prometheus or --scrape, not both") {
		t.Errorf("both sources: %v", err)
	}
}

// observe.rest_wait defaults to 6 minutes; the file sets it, --rest-wait
// wins over the file, and a negative flag is an error.
func TestRestWait(t *testing.T) {
	s, err := Parse("s.yaml", []byte("load: [{duration: 1s, rate: 1/s}]\n"), env(nil))
	if err != nil || s.Observe.RestWait != DefaultRestWait {
		t.Fatalf("default: %v, %v", s.Observe.RestWait, err)
	}
	s, err = Parse("s.yaml", []byte("load: [{duration: 1s, rate: 1/s}]\nobserve: {rest_wait: 2m}\n"), env(nil))
	if err != nil || s.Observe.RestWait != 2*time.Minute {
		t.Fatalf("rest_wait 2m: %v, %v", s.Observe.RestWait, err)
	}
	zero, negative := time.Duration(0), -time.Second
	if err := s.Apply(Overrides{RestWait: &zero}); err != nil || s.Observe.RestWait != 0 {
		t.Errorf("--rest-wait 0: %v, %v", s.Observe.RestWait, err)
	}
	if err := s.Apply(Overrides{RestWait: &negative}); err == nil || !strings.Contains(err.Error(), "--rest-wait: -1s is negative (0 does not wait)") {
		t.Errorf("--rest-wait -1s: %v", err)
	}
	if _, err := Parse("s.yaml", []byte("load: [{duration: 1s, rate: 1/s}]\nobserve: {rest_wait: -1s}\n"), env(nil)); err == nil || !strings.Contains(err.Error(), "observe.rest_wait") {
		t.Errorf("rest_wait -1s: %v", err)
	}
}

// TestOneErrorType: a bad scenario and a bad ScaledObject manifest fail
// with the same error type, each problem at its line and column, printed
// the same way.
func TestOneErrorType(t *testing.T) {
	_, serr := Parse("s.yaml", []byte("load:\n  - {duration: 1s, rate: lots}\n"), env(nil))
	_, kerr := keda.ParseScaledObjects("so.yaml", []byte("kind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n  maxReplicaCount: lots\n  triggers: [{type: cpu}]\n"))
	for _, c := range []struct {
		err  error
		want string
	}{
		{serr, `s.yaml:2:26: load[0].rate: "lots" is not a rate (try 10/s)`},
		{kerr, `so.yaml:5:20: spec.maxReplicaCount: "lots" is not a number`},
	} {
		var es Errors
		var ys yamlread.Errors
		if !errors.As(c.err, &es) || !errors.As(c.err, &ys) || len(es) != 1 {
			t.Fatalf("%T %v: want one yamlread.Errors", c.err, c.err)
		}
		if e := es[0]; e.Line == 0 || e.Col == 0 || e.Error() != c.want {
			t.Errorf("%#v: %q, want %q", e, e.Error(), c.want)
		}
	}
}
