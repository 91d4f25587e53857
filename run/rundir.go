package run

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/scaleout/scaleout/internal/record"
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
	return write("report.html", func(w *bufio.Writer) error { return timeline.WriteHTML(w, r, HTMLAssets()) })
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

// newRecorder records every finished request of the run into the run
// directory (requests.jsonl, and vegeta's encoding when asked for) and the
// timeline.
func newRecorder(out *runDir, tl *timeline.Timeline, stages []scenario.Stage, epoch time.Time, url string) *record.Recorder {
	names := make([]string, len(stages))
	for i, st := range stages {
		names[i] = st.Name
	}
	var also record.Also
	if out.vw != nil {
		venc := vegeta.NewEncoder(out.vw)
		also = func(req *measure.Request, stage string) error {
			return venc.Encode(vegetaResult(req, stage, epoch, url))
		}
	}
	return record.New(out.w, tl, names, also)
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
