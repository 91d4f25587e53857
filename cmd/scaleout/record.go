package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// runDir is the run directory: requests.jsonl while the run goes on, the
// report, the timeline CSV and the HTML page at the end.
type runDir struct {
	dir      string
	requests *os.File
	w        *bufio.Writer
	vegeta   *os.File
	vw       *bufio.Writer
}

func createRunDir(dir string, s *scenario.Scenario, vegetaPath string) (*runDir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the run directory: %w", err)
	}
	if raw, err := os.ReadFile(s.File); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "scenario.yaml"), raw, 0o644)
	}
	f, err := os.Create(filepath.Join(dir, "requests.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("cannot create requests.jsonl: %w", err)
	}
	d := &runDir{dir: dir, requests: f, w: bufio.NewWriterSize(f, 256<<10)}
	if vegetaPath != "" {
		if d.vegeta, err = os.Create(vegetaPath); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot create the vegeta results file: %w", err)
		}
		d.vw = bufio.NewWriterSize(d.vegeta, 256<<10)
	}
	return d, nil
}

// writeReport writes report.json, timeline.csv and report.html.
func (d *runDir) writeReport(r *timeline.Report) error {
	write := func(name string, render func(*bufio.Writer) error) error {
		f, err := os.Create(filepath.Join(d.dir, name))
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		if err := render(w); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		return f.Close()
	}
	if err := write("report.json", func(w *bufio.Writer) error { return timeline.WriteJSON(w, r) }); err != nil {
		return err
	}
	if err := write("timeline.csv", func(w *bufio.Writer) error { return timeline.WriteCSV(w, r) }); err != nil {
		return err
	}
	return write("report.html", func(w *bufio.Writer) error { return timeline.WriteHTML(w, r, uplot()) })
}

// close flushes and closes what is still open (idempotent).
func (d *runDir) close() error {
	var first error
	if d.requests != nil {
		if err := d.w.Flush(); err != nil {
			first = err
		}
		if err := d.requests.Close(); err != nil && first == nil {
			first = err
		}
		d.requests = nil
	}
	if d.vegeta != nil {
		if err := d.vw.Flush(); err != nil && first == nil {
			first = err
		}
		if err := d.vegeta.Close(); err != nil && first == nil {
			first = err
		}
		d.vegeta = nil
	}
	return first
}

// recorder takes every finished request: one line of requests.jsonl
// (streamed to disk, so memory stays flat), the timeline's aggregates, and
// vegeta's encoding when asked for.
type recorder struct {
	mu    sync.Mutex
	out   *runDir
	tl    *timeline.Timeline
	names []string
	buf   []byte
	err   error
	venc  vegeta.Encoder
	epoch time.Time
	url   string
}

func newRecorder(out *runDir, tl *timeline.Timeline, stages []scenario.Stage, epoch time.Time, url string) *recorder {
	r := &recorder{out: out, tl: tl, buf: make([]byte, 0, 1024), epoch: epoch, url: url}
	for _, st := range stages {
		r.names = append(r.names, st.Name)
	}
	if out.vw != nil {
		r.venc = vegeta.NewEncoder(out.vw)
	}
	return r
}

// add is the load generator's sink; it is called from many goroutines.
func (r *recorder) add(req *measure.Request) {
	name := ""
	if req.Stage >= 0 && req.Stage < len(r.names) {
		name = r.names[req.Stage]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = measure.AppendJSONLine(r.buf[:0], req, name)
	if r.err == nil {
		_, r.err = r.out.w.Write(r.buf)
	}
	if r.venc != nil && r.err == nil {
		r.err = r.venc.Encode(vegetaResult(req, name, r.epoch, r.url))
	}
	r.tl.AddRequest(req)
}

// close ends the recording and reports the first write error.
func (r *recorder) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.out.close()
	if r.err != nil {
		return r.err
	}
	return err
}

// vegetaResult is a request in vegeta's terms, so vegeta report and vegeta
// plot can read a scaleout run. A failure carries its class and message
// as vegeta's error.
func vegetaResult(r *measure.Request, stage string, epoch time.Time, url string) *vegeta.Result {
	res := &vegeta.Result{Attack: stage, Seq: r.Seq, Code: uint16(r.Status), Timestamp: epoch.Add(r.Sent), Latency: r.E2E,
		BytesIn: uint64(max(r.BytesIn, 0)), BytesOut: uint64(max(r.BytesOut, 0)), Method: "POST", URL: url}
	if r.Failed() {
		res.Error = string(r.Class)
		if r.Message != "" {
			res.Error += ": " + r.Message
		}
	}
	return res
}
