// Package record is what a run does with every finished request, shared by
// `scaleout run` and the perf suite's in-process profiles so that the two
// cost the same: under one mutex, one requests.jsonl line (streamed to
// disk, so memory stays flat), the timeline's aggregates, and any other
// encoding the run asked for.
package record

import (
	"io"
	"sync"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/timeline"
)

// Also is a further encoding of each request (vegeta's results, say),
// called under the recorder's lock with the request's stage name.
type Also func(req *measure.Request, stage string) error

// Recorder is a load generator's sink. After the first write error it
// stops writing and keeps feeding the timeline.
type Recorder struct {
	mu    sync.Mutex
	w     io.Writer
	tl    *timeline.Timeline
	names []string // stage index → name
	also  Also
	buf   []byte
	err   error
}

// New records into w (requests.jsonl) and tl. stages names the stages by
// index; also may be nil.
func New(w io.Writer, tl *timeline.Timeline, stages []string, also Also) *Recorder {
	return &Recorder{w: w, tl: tl, names: stages, also: also, buf: make([]byte, 0, 1024)}
}

// Add takes one finished request; it is called from many goroutines.
func (r *Recorder) Add(req *measure.Request) {
	name := ""
	if req.Stage >= 0 && req.Stage < len(r.names) {
		name = r.names[req.Stage]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = measure.AppendJSONLine(r.buf[:0], req, name)
	if r.err == nil {
		_, r.err = r.w.Write(r.buf)
	}
	if r.also != nil && r.err == nil {
		r.err = r.also(req, name)
	}
	r.tl.AddRequest(req)
}

// Close runs done (the flush and close of what it wrote to) under the
// lock, so no request is written meanwhile, and returns the first write
// error, else done's.
func (r *Recorder) Close(done func() error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := done()
	if r.err != nil {
		return r.err
	}
	return err
}
