package run

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/scaleout/scaleout/internal/atomicfile"
	"github.com/scaleout/scaleout/internal/record"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// The files of a run directory (docs/report.md).
const (
	reportFile     = "report.json"
	csvFile        = "timeline.csv"
	htmlFile       = "report.html"
	histogramsFile = "histograms.json"
	requestsFile   = "requests.jsonl"
	scenarioFile   = "scenario.yaml"
)

var runFiles = []string{reportFile, csvFile, htmlFile, histogramsFile, requestsFile, scenarioFile}

// ClaimDir refuses an --out directory that already holds a run (a usage
// error), unless overwrite says to replace it: then the old run's files
// go first, so none of them can outlive the new run beside its records.
func ClaimDir(dir string, overwrite bool) error {
	if dir == "" {
		return nil
	}
	var held []string
	for _, f := range runFiles {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			held = append(held, f)
		}
	}
	if len(held) == 0 {
		return nil
	}
	if !overwrite {
		return usagef("--out %s already holds a run (%s): give a new directory, or add --overwrite to replace it", dir, strings.Join(held, ", "))
	}
	for _, f := range held {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			return cannotRun(fmt.Errorf("--overwrite: cannot remove the old run: %w", err))
		}
	}
	return nil
}

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
		err := atomicfile.Write(fsys, filepath.Join(dir, scenarioFile), func(w io.Writer) error {
			_, err := w.Write(raw)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("cannot write the run directory: %w", err)
		}
	}
	f, err := fsys.Create(filepath.Join(dir, requestsFile))
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
		{Path: path(reportFile), Render: func(w io.Writer) error { return timeline.WriteJSON(w, r) }},
		{Path: path(csvFile), Render: func(w io.Writer) error { return timeline.WriteCSV(w, r) }},
		{Path: path(htmlFile), Render: func(w io.Writer) error { return timeline.WriteHTML(w, r, HTMLAssets()) }},
		{Path: path(histogramsFile), Render: func(w io.Writer) error { return timeline.WriteHistograms(w, h) }},
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
