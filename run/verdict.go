package run

import "github.com/scaleout/scaleout/timeline"

// Decide is the run's verdict, from everything that bears on it: whether
// the run directory could be written whole (unwritten: why not; a run
// whose results are not all on disk is unrecorded, never a pass, and the
// command exits 3), the outcomes in the report (the scenario's expectations
// and the client's self-check, which fails a run that did not send its
// planned load even when nothing was expected) and the guard, which fails
// the run when strict, and when it acted (guard: act) but could not
// restore the pause or see KEDA honour it. A partial run keeps the verdict of what it
// measured; the command exits 130 for it whatever the verdict.
func Decide(r *timeline.Report, strictGuard bool, unwritten error) timeline.Verdict {
	if unwritten != nil {
		return timeline.Unrecorded
	}
	failed := r.Guard != nil && !r.Guard.OK && (strictGuard || r.Guard.Required == "act")
	for _, o := range r.Expectations {
		failed = failed || !o.OK
	}
	switch {
	case failed:
		return timeline.Fail
	case len(r.Expectations) == 0:
		return timeline.None
	}
	return timeline.Pass
}
