package run

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/scaleout/scaleout/internal/atomicfile"
	"github.com/scaleout/scaleout/internal/record"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// runDir is the run directory: requests.jsonl while the run goes on, the
// report, the timeline CSV and the HTML page at the end. Every file but
// requests.jsonl is written whole or not at all; requests.jsonl always
// ends at a whole line.
type runDir struct {
	dir      string
	fs       atomicfile.FS
	requests *record.Lines
	vegeta   *os.File
	vw       *bufio.Writer
}

func createRunDir(fsys atomicfile.FS, dir string, s *scenario.Scenario, vegetaPath string) (*runDir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the run directory: %w", err)
	}
	if raw, err := os.ReadFile(s.File); err == nil {
		err := atomicfile.Write(fsys, filepath.Join(dir, "scenario.yaml"), func(w io.Writer) error {
			_, err := w.Write(raw)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("cannot write the run directory: %w", err)
		}
	}
	f, err := fsys.Create(filepath.Join(dir, "requests.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("cannot create requests.jsonl: %w", err)
	}
	d := &runDir{dir: dir, fs: fsys, requests: record.NewLines(f, 256<<10)}
	if vegetaPath != "" {
		if d.vegeta, err = os.Create(vegetaPath); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot create the vegeta results file: %w", err)
		}
		d.vw = bufio.NewWriterSize(d.vegeta, 256<<10)
	}
	return d, nil
}

// writeReport writes report.json, timeline.csv, report.html and
// histograms.json: all of them, each whole, or none.
func (d *runDir) writeReport(r *timeline.Report, h *timeline.Histograms) error {
	path := func(name string) string { return filepath.Join(d.dir, name) }
	return atomicfile.WriteAll(d.fs, []atomicfile.Entry{
		{Path: path("report.json"), Render: func(w io.Writer) error { return timeline.WriteJSON(w, r) }},
		{Path: path("timeline.csv"), Render: func(w io.Writer) error { return timeline.WriteCSV(w, r) }},
		{Path: path("report.html"), Render: func(w io.Writer) error { return timeline.WriteHTML(w, r, HTMLAssets()) }},
		{Path: path("histograms.json"), Render: func(w io.Writer) error { return timeline.WriteHistograms(w, h) }},
	})
}

// close flushes and closes what is still open (idempotent).
func (d *runDir) close() error {
	first := d.requests.Close()
	if d.vegeta != nil {
		if err := d.vw.Flush(); err != nil && first == nil {
			first = fmt.Errorf("%s: %w", d.vegeta.Name(), err)
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
			if err := venc.Encode(vegetaResult(req, stage, epoch, url)); err != nil {
				return fmt.Errorf("%s: %w", out.vegeta.Name(), err)
			}
			return nil
		}
	}
	return record.New(out.requests, tl, names, also)
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
