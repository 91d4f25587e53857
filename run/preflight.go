package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/scaleout/scaleout/internal/weburl"
	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promql"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
)

// Level is how serious a preflight finding is.
type Level int

const (
	OK Level = iota
	Warn
	Fail
)

func (l Level) String() string {
	return [...]string{"ok", "warn", "FAIL"}[l]
}

// Finding is one preflight result: what was found and, when it is not
// ok, the one-line fix.
type Finding struct {
	Level Level
	Msg   string
	Fix   string
}

func (f Finding) String() string {
	if f.Fix == "" {
		return f.Msg
	}
	return f.Msg + " — fix: " + f.Fix
}

// PreflightError is a failed preflight (exit 3); its findings say why.
type PreflightError struct{ Fails []Finding }

func (e *PreflightError) Error() string {
	msgs := make([]string, len(e.Fails))
	for i, f := range e.Fails {
		msgs[i] = f.Msg
	}
	return "preflight failed: " + strings.Join(msgs, "; ")
}

// checkClient is the HTTP client of the preflight: short timeout, no proxy.
var checkClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}

// preflight checks that the target answers and serves the model and that
// every query answers. It returns the findings, the model to request (the
// target's first when the scenario names none) and a *PreflightError when
// anything failed.
func preflight(ctx context.Context, p *Plan) ([]Finding, string, error) {
	s, src, trig := p.Scenario, p.Source, p.Triggers
	var fs []Finding
	model := checkTarget(ctx, s, &fs)
	checkScaledObject(trig, src, &fs)
	checkKube(ctx, p, &fs)
	checkObservation(ctx, s, src, trig, &fs)
	var fails []Finding
	for i, f := range fs {
		f.Msg, f.Fix = p.Secrets.Text(f.Msg), p.Secrets.Text(f.Fix) // a finding may quote a server's answer
		fs[i] = f
		if f.Level == Fail {
			fails = append(fails, f)
		}
	}
	if len(fails) > 0 {
		return fs, model, cannotRun(&PreflightError{fails})
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
func checkTarget(ctx context.Context, s *scenario.Scenario, fs *[]Finding) string {
	url := s.Target.URL + "/v1/models"
	model := s.Target.Model
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		*fs = append(*fs, Finding{Fail, "target " + weburl.Redact(url) + ": " + err.Error(), "fix target.url"})
		return model
	}
	for _, h := range s.Target.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := checkClient.Do(req)
	if err != nil {
		*fs = append(*fs, Finding{Fail, "target " + weburl.Redact(s.Target.URL) + " does not answer: " + promwatch.ShortError(err),
			"is the gateway running and reachable from here? (target.url or --target)"})
		return model
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		*fs = append(*fs, Finding{Fail, fmt.Sprintf("target answered %s to GET /v1/models", resp.Status),
			"give the gateway's token: target.headers: {Authorization: Bearer ${GATEWAY_TOKEN}}"})
		return model
	case resp.StatusCode != http.StatusOK:
		*fs = append(*fs, Finding{Fail, fmt.Sprintf("target answered %s to GET /v1/models: %s", resp.Status, firstLine(body)),
			"is target.url the gateway's base URL (the one that serves /v1/completions)?"})
		return model
	}
	var ml modelList
	if err := json.Unmarshal(body, &ml); err != nil || len(ml.Data) == 0 {
		*fs = append(*fs, Finding{Fail, "target's /v1/models lists no model: " + firstLine(body),
			"is target.url an OpenAI-compatible server?"})
		return model
	}
	ids := make([]string, len(ml.Data))
	for i, m := range ml.Data {
		ids[i] = m.ID
	}
	if model == "" {
		model = ids[0]
		*fs = append(*fs, Finding{OK, fmt.Sprintf("target %s serves %s (target.model not set: using it)", weburl.Redact(s.Target.URL), model), ""})
		return model
	}
	for _, m := range ml.Data {
		if m.ID == model {
			msg := fmt.Sprintf("target %s serves %s", weburl.Redact(s.Target.URL), model)
			if m.MaxModelLen > 0 {
				msg += fmt.Sprintf(" (max_model_len %d)", m.MaxModelLen)
				if need := s.Request.PromptTokens.Upper() + s.Request.MaxTokens.Upper(); s.Request.Prompts == "" && need > m.MaxModelLen {
					*fs = append(*fs, Finding{Warn, fmt.Sprintf("prompt_tokens + max_tokens reach %d, over max_model_len %d: such requests get 400", need, m.MaxModelLen),
						"lower request.prompt_tokens or request.max_tokens"})
				}
			}
			*fs = append(*fs, Finding{OK, msg, ""})
			return model
		}
	}
	*fs = append(*fs, Finding{Fail, fmt.Sprintf("model %q is not served by the target (it serves %s)", model, strings.Join(ids, ", ")),
		fmt.Sprintf("--model %s, or fix target.model", ids[0])})
	return model
}

// checkScaledObject reports what the manifest says before anything is
// queried: the HPA it makes, the shapes that cannot scale as intended.
func checkScaledObject(trig *Triggers, src promwatch.Evaluator, fs *[]Finding) {
	if trig == nil {
		return
	}
	so := trig.so
	*fs = append(*fs, Finding{OK, fmt.Sprintf("%s: HPA %s, %d prometheus trigger(s)", so, so.HPAName, len(so.Prometheus())), ""})
	for _, l := range so.Lint() {
		*fs = append(*fs, Finding{Warn, l, ""})
	}
	if so.Paused {
		*fs = append(*fs, Finding{OK, "the manifest ships paused (autoscaling.keda.sh/paused): the live state is checked below", ""})
	}
	for _, t := range so.Prometheus() {
		if src != nil && t.ServerAddress != "" && !strings.Contains(src.String(), strings.TrimSuffix(t.ServerAddress, "/")) {
			*fs = append(*fs, Finding{OK, fmt.Sprintf("trigger %d: KEDA queries %s and scaleout reads %s: their numbers agree only if both see the same series", t.Index, t.ServerAddress, src.String()), ""})
			break
		}
	}
}

// checkKube checks, when the run reads the Kubernetes API, that this
// identity may do what the run will (the review the acting guard or the
// plan made already is not asked again), and runs the runbook's
// troubleshooting checks on the objects.
func checkKube(ctx context.Context, p *Plan, fs *[]Finding) {
	if p.Kube == nil {
		return
	}
	act := p.Scenario.Guard == "act"
	access := p.Kube.accessFindings(ctx, act)
	*fs = append(*fs, access...)
	if slices.ContainsFunc(access, func(f Finding) bool { return f.Level == Fail }) {
		return
	}
	*fs = append(*fs, p.Kube.diagnoseFindings(ctx, act)...)
}

// index is the place in spec.triggers of the i-th prometheus trigger (the
// number KEDA and the lint use).
func (t *Triggers) index(i int) int { return t.so.Prometheus()[i].Index }

// triggerOf returns the trigger a series observes, if any.
func (t *Triggers) triggerOf(name string) (int, bool) {
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

// checkObservation evaluates every series, asking again while the answers
// are held back (see askFresh). A series that observes a KEDA trigger must
// return exactly one sample, as KEDA needs.
func checkObservation(ctx context.Context, s *scenario.Scenario, src promwatch.Evaluator, trig *Triggers, fs *[]Finding) {
	if src == nil {
		*fs = append(*fs, Finding{OK, "nothing observed: load only (observe.prometheus, observe.scrape or a sim: block add the timeline's series)", ""})
		return
	}
	if len(s.Observe.Series) == 0 {
		*fs = append(*fs, Finding{Warn, src.String() + " is given but no series (observe.vllm, observe.hpa, observe.deployment or observe.series)",
			`add observe.vllm: '{namespace="…"}' and observe.hpa: NAMESPACE/NAME`})
		return
	}
	qs := make([]string, len(s.Observe.Series))
	for i, ser := range s.Observe.Series {
		qs[i] = ser.Query
	}
	res, asked, waited := askFresh(ctx, src, qs)
	ctx, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	// Answers still held back say nothing about the queries (a Prometheus
	// that has just started has not scraped yet; one that stalled answers
	// from before): nothing was checked, and that is no pass.
	allFailed, held := true, ""
	for _, r := range res {
		if heldBack(r.Err) {
			held = promwatch.Reason(r.Err)
		}
		allFailed = allFailed && r.Err != nil && held == ""
	}
	if allFailed {
		*fs = append(*fs, Finding{Fail, src.String() + " does not answer: " + promwatch.Reason(res[0].Err),
			"is it reachable from here? (observe.prometheus / --prometheus, observe.scrape / --scrape; a port-forward works)"})
		return
	}
	if held != "" {
		*fs = append(*fs, Finding{Fail, fmt.Sprintf("no query could be checked: %s (asked %d times over %s)", held, asked, waited.Round(100*time.Millisecond)),
			"wait until Prometheus scrapes every target again (one scrape interval after it starts or resumes) and check again"})
		return
	}
	if asked > 1 {
		*fs = append(*fs, Finding{OK, fmt.Sprintf("%s held its first answers back (not scraped since its start, or stale): fresh after %s", src, waited.Round(100*time.Millisecond)), ""})
	}
	*fs = append(*fs, Finding{OK, src.String() + " answers", ""})
	// KEDA deletes a paused ScaledObject's HPA: desired and current that
	// return nothing are explained by that, not by the queries.
	isHPA := func(name string) bool { return name == platform.Desired || name == platform.Current }
	paused := ""
	for i, ser := range s.Observe.Series {
		if isHPA(ser.Name) && res[i].Err == nil && len(res[i].Vector) == 0 {
			paused = pausedNow(ctx, s, src)
			break
		}
	}
	for i, ser := range s.Observe.Series {
		r := res[i]
		v := promwatch.ToValue(r)
		ti, isTrigger := trig.triggerOf(ser.Name)
		for _, w := range r.Warnings {
			*fs = append(*fs, Finding{Warn, fmt.Sprintf("series %s: %s", ser.Name, w), ""})
		}
		switch {
		case r.Err != nil && ser.Source == SourceAPI:
			*fs = append(*fs, Finding{Fail, fmt.Sprintf("series %s (from the Kubernetes API): %s", ser.Name, v.Gap), "see the Kubernetes findings above"})
		case r.Err != nil:
			*fs = append(*fs, Finding{Fail, fmt.Sprintf("series %s: %s", ser.Name, v.Gap), "fix the query: " + ser.Query})
		case len(r.Vector) == 0 && paused != "" && isHPA(ser.Name):
			// the paused finding below says why
		case len(r.Vector) == 0 && isTrigger:
			f := emptySeries(ctx, src, ser)
			f.Level = Fail
			f.Msg = fmt.Sprintf("trigger %d: %s — KEDA reads an empty result as 0 (ignoreNullValues), which silently holds the deployment at its minimum", trig.index(ti), f.Msg)
			*fs = append(*fs, f)
		case len(r.Vector) == 0:
			f := emptySeries(ctx, src, ser)
			f.Level = Warn // a column of the timeline, not what KEDA reads
			*fs = append(*fs, f)
		case len(r.Vector) > 1 && isTrigger:
			*fs = append(*fs, Finding{Fail, fmt.Sprintf("trigger %d (series %s) returns %d samples: KEDA needs exactly one and fails the scaler", trig.index(ti), ser.Name, len(r.Vector)),
				"aggregate the trigger's query: sum(" + ser.Query + ")"})
		case len(r.Vector) > 1:
			*fs = append(*fs, Finding{Warn, fmt.Sprintf("series %s returns %d series; the timeline needs one", ser.Name, len(r.Vector)),
				"wrap the query in sum(…) or max(…): " + ser.Query})
		case isTrigger:
			so := trig.so
			want := min(max(keda.Recommend(so.Prometheus()[ti].Metric(), v.V, 1, keda.DefaultTolerance), so.HPAMin()), so.Max)
			*fs = append(*fs, Finding{OK, fmt.Sprintf("trigger %d (series %s) = %s: one sample, as KEDA needs (from 1 replica it asks for %d)", trig.index(ti), ser.Name, FormatValue(v), want), ""})
		default:
			*fs = append(*fs, Finding{OK, fmt.Sprintf("series %s = %s", ser.Name, FormatValue(v)), ""})
		}
	}
	if paused != "" {
		*fs = append(*fs, Finding{Fail, fmt.Sprintf("the ScaledObject %s is paused (KEDA deletes its HPA while paused, so desired and current have no series)", paused),
			"un-pause it for the run: " + pauseCommand(paused, false) + "; re-pause it after: " + pauseCommand(paused, true)})
	}
}

// evalTimeout bounds one evaluation of the preflight.
const evalTimeout = 15 * time.Second

// maxFreshWait bounds how long the preflight asks again for answers held
// back by a source that does not know its scrape interval.
const maxFreshWait = 30 * time.Second

// heldBack tells an answer the source held back because it may be from
// before its start or stale: it says nothing about the query.
func heldBack(err error) bool {
	return errors.Is(err, promwatch.ErrUnscraped) || errors.Is(err, promwatch.ErrStale)
}

// askFresh evaluates qs until no answer is held back, for at most two of
// the source's scrape intervals (maxFreshWait when it does not know them),
// asking every quarter interval (between 50 ms and 1 s). It returns the
// last answers, how many times it asked and for how long.
func askFresh(ctx context.Context, src promwatch.Evaluator, qs []string) (res []promwatch.Result, asked int, waited time.Duration) {
	began := time.Now()
	for {
		ectx, cancel := context.WithTimeout(ctx, evalTimeout)
		res = src.Eval(ectx, time.Now(), qs)
		cancel()
		asked++
		waited = time.Since(began)
		if !slices.ContainsFunc(res, func(r promwatch.Result) bool { return heldBack(r.Err) }) {
			return res, asked, waited
		}
		bound, pause := maxFreshWait, time.Second
		if iv, ok := src.(interface{ ScrapeInterval() time.Duration }); ok && iv.ScrapeInterval() > 0 {
			bound = min(bound, 2*iv.ScrapeInterval())
			pause = min(max(iv.ScrapeInterval()/4, 50*time.Millisecond), time.Second)
		}
		if waited+pause > bound {
			return res, asked, waited
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, asked, waited
		case <-t.C:
		}
	}
}

// emptySeries explains a query that returns nothing: a renamed vLLM
// metric, or a metric the source does not have at all.
func emptySeries(ctx context.Context, src promwatch.Evaluator, ser measure.Series) Finding {
	for _, alt := range platform.Alternatives(ser.Query) {
		if r := src.Eval(ctx, time.Now(), []string{alt.Query}); len(r) == 1 && r[0].Err == nil && len(r[0].Vector) > 0 {
			return Finding{Fail, fmt.Sprintf("series %s returns nothing: %s is not exported, but %s is (%s)", ser.Name, alt.Metric, alt.Other, alt.Why),
				"use " + alt.Other + " in the query (and in the ScaledObject's trigger)"}
		}
	}
	name := ""
	if refs := promql.Refs(ser.Query); len(refs) > 0 {
		name = refs[0].Name
	}
	if name != "" {
		if r := src.Eval(ctx, time.Now(), []string{"count(" + name + ")"}); len(r) == 1 && r[0].Err == nil && len(r[0].Vector) == 0 {
			return Finding{Warn, fmt.Sprintf("series %s returns nothing: no %s series at all", ser.Name, name),
				"is the exporter scraped? (for vllm:* a ServiceMonitor/PodMonitor; for kube_* kube-state-metrics; check the labels in the query)"}
		}
		return Finding{Warn, fmt.Sprintf("series %s returns nothing: %s exists, but not with these labels", ser.Name, name),
			"check the label values in the query: " + ser.Query}
	}
	return Finding{Warn, fmt.Sprintf("series %s returns nothing (KEDA would read it as 0)", ser.Name), "check the query: " + ser.Query}
}

// FormatValue prints a sample value, or its gap.
func FormatValue(v measure.Value) string {
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
