package run

import (
	"net/http"

	"github.com/scaleout/scaleout/internal/sysres"
	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/scenario"
)

// promptSource reads the scenario's prompts file, or makes its synthetic
// prompts; a bad file is the user's to fix (exit 2).
func promptSource(s *scenario.Scenario) (loadgen.PromptSource, error) {
	q := s.Request
	if q.Prompts == "" {
		return loadgen.Synthetic(q.PromptTokens, q.Seed), nil
	}
	p, err := loadgen.LoadPrompts(q.Prompts)
	if err != nil {
		return nil, usagef("%s: request.prompts: %v", s.File, err)
	}
	return p, nil
}

// bodies renders the request bodies for model (a usage error when they
// cannot be: a pool over its cap, a prompt with no text).
func (p *Plan) bodies(model string) (*loadgen.Bodies, error) {
	s, prompts := p.Scenario, p.Prompts
	q := s.Request
	b, err := loadgen.NewBodies(loadgen.RequestSpec{
		API: s.Target.API, Model: model, Stream: s.Target.Stream, MaxTokens: q.MaxTokens,
		IgnoreEOS: q.IgnoreEOS, Temperature: q.Temperature, Prompts: prompts, Sample: q.Sample, Seed: q.Seed,
	})
	if err != nil {
		return nil, usagef("%s: request: %v", s.File, err)
	}
	return b, nil
}

// headers are the scenario's extra request headers.
func headers(s *scenario.Scenario) http.Header {
	h := http.Header{}
	for _, x := range s.Target.Headers {
		h.Set(x.Name, x.Value)
	}
	return h
}

// defaultMaxInFlight derives max_in_flight from the machine: the file
// descriptors this process may open (Go raises the soft limit to the hard
// one at start), less a reserve for everything else, and at most 10,000
// (also where there is no such limit: Windows).
func defaultMaxInFlight() int {
	soft, _, ok := sysres.OpenFiles()
	if !ok {
		return 10000
	}
	if soft < 512 {
		return 256
	}
	return int(min(soft-256, 10000))
}
