package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/internal/weburl"
	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// level is how serious a preflight finding is.
type level int

const (
	levelOK level = iota
	levelWarn
	levelFail
)

func (l level) String() string {
	return [...]string{"ok", "warn", "FAIL"}[l]
}

// finding is one preflight result: what was found and, when it is not ok,
// the one-line fix.
type finding struct {
	level level
	msg   string
	fix   string
}

func (f finding) text() string {
	if f.fix == "" {
		return f.msg
	}
	return f.msg + " — fix: " + f.fix
}

func printFindings(w io.Writer, fs []finding, all bool) {
	for _, f := range fs {
		if f.level == levelOK && !all {
			continue
		}
		fmt.Fprintf(w, "%-4s  %s\n", f.level, f.text())
	}
}

// preflightError is a failed preflight (exit 3); its findings are printed.
type preflightError struct{ fails []finding }

func (e *preflightError) Error() string {
	msgs := make([]string, len(e.fails))
	for i, f := range e.fails {
		msgs[i] = f.msg
	}
	return "preflight failed: " + strings.Join(msgs, "; ")
}

// checkClient is the HTTP client of the preflight: short timeout, no proxy.
var checkClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}

// preflight checks that the target answers and serves the model and that
// every query answers. It returns the findings, the model to request (the
// target's first when the scenario names none) and a *preflightError when
// anything failed.
func preflight(ctx context.Context, s *scenario.Scenario, src promwatch.Evaluator, trig *triggers) ([]finding, string, error) {
	var fs []finding
	model := checkTarget(ctx, s, &fs)
	checkScaledObject(trig, src, &fs)
	checkObservation(ctx, s, src, trig, &fs)
	var fails []finding
	for _, f := range fs {
		if f.level == levelFail {
			fails = append(fails, f)
		}
	}
	if len(fails) > 0 {
		return fs, model, withCode(exitCannotRun, &preflightError{fails})
	}
	return fs, model, nil
}

type modelList struct {
	Data []struct {
		ID          string `json:"id"`
		MaxModelLen int    `json:"max_model_len"`
	} `json:"data"`
}

// checkTarget asks the gateway which models it serves.
func checkTarget(ctx context.Context, s *scenario.Scenario, fs *[]finding) string {
	url := s.Target.URL + "/v1/models"
	model := s.Target.Model
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		*fs = append(*fs, finding{levelFail, "target " + weburl.Redact(url) + ": " + err.Error(), "fix target.url"})
		return model
	}
	for _, h := range s.Target.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := checkClient.Do(req)
	if err != nil {
		*fs = append(*fs, finding{levelFail, "target " + weburl.Redact(s.Target.URL) + " does not answer: " + promwatch.ShortError(err),
			"is the gateway running and reachable from here? (target.url or --target)"})
		return model
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		*fs = append(*fs, finding{levelFail, fmt.Sprintf("target answered %s to GET /v1/models", resp.Status),
			"give the gateway's token: target.headers: {Authorization: Bearer ${GATEWAY_TOKEN}}"})
		return model
	case resp.StatusCode != http.StatusOK:
		*fs = append(*fs, finding{levelFail, fmt.Sprintf("target answered %s to GET /v1/models: %s", resp.Status, firstLine(body)),
			"is target.url the gateway's base URL (the one that serves /v1/completions)?"})
		return model
	}
	var ml modelList
	if err := json.Unmarshal(body, &ml); err != nil || len(ml.Data) == 0 {
		*fs = append(*fs, finding{levelFail, "target's /v1/models lists no model: " + firstLine(body),
			"is target.url an OpenAI-compatible server?"})
		return model
	}
	ids := make([]string, len(ml.Data))
	for i, m := range ml.Data {
		ids[i] = m.ID
	}
	if model == "" {
		model = ids[0]
		*fs = append(*fs, finding{levelOK, fmt.Sprintf("target %s serves %s (target.model not set: using it)", weburl.Redact(s.Target.URL), model), ""})
		return model
	}
	for _, m := range ml.Data {
		if m.ID == model {
			msg := fmt.Sprintf("target %s serves %s", weburl.Redact(s.Target.URL), model)
			if m.MaxModelLen > 0 {
				msg += fmt.Sprintf(" (max_model_len %d)", m.MaxModelLen)
				if need := s.Request.PromptTokens.Upper() + s.Request.MaxTokens.Upper(); s.Request.Prompts == "" && need > m.MaxModelLen {
					*fs = append(*fs, finding{levelWarn, fmt.Sprintf("prompt_tokens + max_tokens reach %d, over max_model_len %d: such requests get 400", need, m.MaxModelLen),
						"lower request.prompt_tokens or request.max_tokens"})
				}
			}
			*fs = append(*fs, finding{levelOK, msg, ""})
			return model
		}
	}
	*fs = append(*fs, finding{levelFail, fmt.Sprintf("model %q is not served by the target (it serves %s)", model, strings.Join(ids, ", ")),
		fmt.Sprintf("--model %s, or fix target.model", ids[0])})
	return model
}

// checkScaledObject reports what the manifest says before anything is
// queried: the HPA it makes, the shapes that cannot scale as intended.
func checkScaledObject(trig *triggers, src promwatch.Evaluator, fs *[]finding) {
	if trig == nil {
		return
	}
	so := trig.so
	*fs = append(*fs, finding{levelOK, fmt.Sprintf("%s: HPA %s, %d prometheus trigger(s)", so, so.HPAName, len(so.Prometheus())), ""})
	for _, l := range so.Lint() {
		*fs = append(*fs, finding{levelWarn, l, ""})
	}
	if so.Paused {
		*fs = append(*fs, finding{levelOK, "the manifest ships paused (autoscaling.keda.sh/paused): the live state is checked below", ""})
	}
	for _, t := range so.Prometheus() {
		if src != nil && t.ServerAddress != "" && !strings.Contains(src.String(), strings.TrimSuffix(t.ServerAddress, "/")) {
			*fs = append(*fs, finding{levelOK, fmt.Sprintf("trigger %d: KEDA queries %s and scaleout reads %s: their numbers agree only if both see the same series", t.Index, t.ServerAddress, src.String()), ""})
			break
		}
	}
}

// index is the place in spec.triggers of the i-th prometheus trigger (the
// number KEDA and the lint use).
func (t *triggers) index(i int) int { return t.so.Prometheus()[i].Index }

// triggerOf returns the trigger a series observes, if any.
func (t *triggers) triggerOf(name string) (int, bool) {
	if t == nil {
		return 0, false
	}
	for i, n := range t.names {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

// checkObservation evaluates every series once. A series that observes a
// KEDA trigger must return exactly one sample, as KEDA needs.
func checkObservation(ctx context.Context, s *scenario.Scenario, src promwatch.Evaluator, trig *triggers, fs *[]finding) {
	if src == nil {
		*fs = append(*fs, finding{levelOK, "nothing observed: load only (observe.prometheus, observe.scrape or a sim: block add the timeline's series)", ""})
		return
	}
	if len(s.Observe.Series) == 0 {
		*fs = append(*fs, finding{levelWarn, src.String() + " is given but no series (observe.vllm, observe.hpa, observe.deployment or observe.series)",
			`add observe.vllm: '{namespace="…"}' and observe.hpa: NAMESPACE/NAME`})
		return
	}
	qs := make([]string, len(s.Observe.Series))
	for i, ser := range s.Observe.Series {
		qs[i] = ser.Query
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res := src.Eval(ctx, time.Now(), qs)
	// A Prometheus that has just started has not scraped yet: its answers
	// (empty ones included) say nothing about the queries.
	allFailed, unscraped := true, ""
	for _, r := range res {
		if errors.Is(r.Err, promwatch.ErrUnscraped) {
			unscraped = promwatch.Reason(r.Err)
		}
		allFailed = allFailed && r.Err != nil && unscraped == ""
	}
	if allFailed {
		*fs = append(*fs, finding{levelFail, src.String() + " does not answer: " + promwatch.Reason(res[0].Err),
			"is it reachable from here? (observe.prometheus / --prometheus, observe.scrape / --scrape; a port-forward works)"})
		return
	}
	*fs = append(*fs, finding{levelOK, src.String() + " answers", ""})
	// KEDA deletes a paused ScaledObject's HPA: desired and current that
	// return nothing are explained by that, not by the queries.
	isHPA := func(name string) bool { return name == timeline.Desired || name == timeline.Current }
	paused := ""
	for i, ser := range s.Observe.Series {
		if unscraped == "" && isHPA(ser.Name) && res[i].Err == nil && len(res[i].Vector) == 0 {
			paused = pausedNow(ctx, s, src)
			break
		}
	}
	var notYet []string
	for i, ser := range s.Observe.Series {
		r := res[i]
		v := promwatch.ToValue(r)
		ti, isTrigger := trig.triggerOf(ser.Name)
		for _, w := range r.Warnings {
			*fs = append(*fs, finding{levelWarn, fmt.Sprintf("series %s: %s", ser.Name, w), ""})
		}
		switch {
		case errors.Is(r.Err, promwatch.ErrUnscraped):
			if len(r.Vector) == 0 {
				notYet = append(notYet, ser.Name)
			}
		case r.Err != nil:
			*fs = append(*fs, finding{levelFail, fmt.Sprintf("series %s: %s", ser.Name, v.Gap), "fix the query: " + ser.Query})
		case len(r.Vector) == 0 && paused != "" && isHPA(ser.Name):
			// the paused finding below says why
		case len(r.Vector) == 0 && isTrigger:
			f := emptySeries(ctx, src, ser)
			f.level = levelFail
			f.msg = fmt.Sprintf("trigger %d: %s — KEDA reads an empty result as 0 (ignoreNullValues), which silently holds the deployment at its minimum", trig.index(ti), f.msg)
			*fs = append(*fs, f)
		case len(r.Vector) == 0:
			f := emptySeries(ctx, src, ser)
			f.level = levelWarn // a column of the timeline, not what KEDA reads
			*fs = append(*fs, f)
		case len(r.Vector) > 1 && isTrigger:
			*fs = append(*fs, finding{levelFail, fmt.Sprintf("trigger %d (series %s) returns %d samples: KEDA needs exactly one and fails the scaler", trig.index(ti), ser.Name, len(r.Vector)),
				"aggregate the trigger's query: sum(" + ser.Query + ")"})
		case len(r.Vector) > 1:
			*fs = append(*fs, finding{levelWarn, fmt.Sprintf("series %s returns %d series; the timeline needs one", ser.Name, len(r.Vector)),
				"wrap the query in sum(…) or max(…): " + ser.Query})
		case isTrigger:
			so := trig.so
			want := min(max(keda.Recommend(so.Prometheus()[ti].Metric(), v.V, 1, keda.DefaultTolerance), so.HPAMin()), so.Max)
			*fs = append(*fs, finding{levelOK, fmt.Sprintf("trigger %d (series %s) = %s: one sample, as KEDA needs (from 1 replica it asks for %d)", trig.index(ti), ser.Name, fmtValue(v), want), ""})
		default:
			*fs = append(*fs, finding{levelOK, fmt.Sprintf("series %s = %s", ser.Name, fmtValue(v)), ""})
		}
	}
	if unscraped != "" {
		msg := unscraped
		if len(notYet) > 0 {
			msg += "; return nothing yet: " + strings.Join(notYet, ", ")
		}
		*fs = append(*fs, finding{levelWarn, msg, "wait one scrape interval and check again (scaleout check)"})
		return
	}
	if paused != "" {
		*fs = append(*fs, finding{levelFail, fmt.Sprintf("the ScaledObject %s is paused (KEDA deletes its HPA while paused, so desired and current have no series)", paused),
			"un-pause it for the run (make keda-demo-up), and re-pause after (make keda-demo-down)"})
	}
}

var metricName = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// renames are vLLM metric names that changed: the name a query uses → the
// name the server may export instead.
var renames = map[string]string{
	"vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc",
	"vllm:kv_cache_usage_perc":  "vllm:gpu_cache_usage_perc",
}

// emptySeries explains a query that returns nothing: a renamed vLLM
// metric, or a metric the source does not have at all.
func emptySeries(ctx context.Context, src promwatch.Evaluator, ser measure.Series) finding {
	for old, alt := range renames {
		if !strings.Contains(ser.Query, old) {
			continue
		}
		q := strings.ReplaceAll(ser.Query, old, alt)
		if r := src.Eval(ctx, time.Now(), []string{q}); len(r) == 1 && r[0].Err == nil && len(r[0].Vector) > 0 {
			why := "vLLM V1 renamed it (removed in 0.12)"
			if old == "vllm:kv_cache_usage_perc" {
				why = "this server still exports the pre-V1 name"
			}
			return finding{levelFail, fmt.Sprintf("series %s returns nothing: %s is not exported, but %s is (%s)", ser.Name, old, alt, why),
				"use " + alt + " in the query (and in the ScaledObject's trigger)"}
		}
	}
	name := ""
	for _, m := range metricName.FindAllString(ser.Query, -1) {
		if strings.Contains(m, ":") || strings.HasPrefix(m, "kube_") || strings.HasPrefix(m, "keda_") {
			name = m
			break
		}
	}
	if name != "" {
		if r := src.Eval(ctx, time.Now(), []string{"count(" + name + ")"}); len(r) == 1 && r[0].Err == nil && len(r[0].Vector) == 0 {
			return finding{levelWarn, fmt.Sprintf("series %s returns nothing: no %s series at all", ser.Name, name),
				"is the exporter scraped? (for vllm:* a ServiceMonitor/PodMonitor; for kube_* kube-state-metrics; check the labels in the query)"}
		}
		return finding{levelWarn, fmt.Sprintf("series %s returns nothing: %s exists, but not with these labels", ser.Name, name),
			"check the label values in the query: " + ser.Query}
	}
	return finding{levelWarn, fmt.Sprintf("series %s returns nothing (KEDA would read it as 0)", ser.Name), "check the query: " + ser.Query}
}

func fmtValue(v measure.Value) string {
	if !v.OK() {
		return v.Gap
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v.V), "0"), ".")
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// cmdCheck is scaleout check: the preflight alone, every finding printed.
func cmdCheck(ctx context.Context, e env, args []string) error {
	var over scenario.Overrides
	fs := pflag.NewFlagSet("scaleout check", pflag.ContinueOnError)
	bindSources(fs, &over)
	if err := parseFlags(fs, args, e, "scaleout check SCENARIO [flags]"); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("check takes one scenario file, got %d arguments", fs.NArg())
	}
	l, err := loadScenario(ctx, fs.Arg(0), over)
	if err != nil {
		return err
	}
	defer l.close()
	s := l.s
	if _, err := parseExpectations(s, timelineSeries(s, l.trig)); err != nil {
		return err
	}
	src, err := newSource(s)
	if err != nil {
		return err
	}
	// The request bodies are checked (a prompts file, lengths) with a
	// stand-in model name: the preflight finds the real one.
	prompts, err := promptSource(s)
	if err != nil {
		return err
	}
	if _, err := newBodies(s, "model", prompts); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	sig := watchInterrupts(ctx, e.signals)
	sig.set(stop, stop)
	findings, _, err := preflight(ctx, s, src, l.trig)
	if sig.count() > 0 {
		return silent(exitInterrupted)
	}
	printFindings(e.stdout, findings, true)
	if err != nil {
		return silent(exitCannotRun)
	}
	return nil
}
