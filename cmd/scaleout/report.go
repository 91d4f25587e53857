package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/internal/atomicfile"
	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/timeline"
)

// cmdReport prints a stored run again and rebuilds its report.html, or
// compares two runs side by side.
func cmdReport(_ context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "merge" {
		return cmdReportMerge(e, args[1:])
	}
	fs := pflag.NewFlagSet("scaleout report", pflag.ContinueOnError)
	rows := fs.Int("rows", 80, "most timeline rows to print")
	if err := parseFlags(fs, args, e, "scaleout report RUN_DIR [RUN_DIR]"); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return usagef("report takes one run directory (print it again) or two (compare them), got %d", fs.NArg())
	}
	var reports []*timeline.Report
	for _, dir := range fs.Args() {
		r, err := readReport(dir)
		if err != nil {
			return err
		}
		reports = append(reports, r)
	}
	if len(reports) == 2 {
		return timeline.WriteComparison(e.stdout, reports[0], reports[1], fs.Arg(0), fs.Arg(1))
	}
	dir := fs.Arg(0)
	if err := timeline.WriteText(e.stdout, reports[0], timeline.TextOptions{MaxRows: *rows}); err != nil {
		return err
	}
	err := atomicfile.Write(atomicfile.OS, filepath.Join(dir, "report.html"), func(w io.Writer) error {
		return timeline.WriteHTML(w, reports[0], run.HTMLAssets())
	})
	if err != nil {
		return withCode(exitCannotRun, err)
	}
	fmt.Fprintf(e.stdout, "rebuilt %s\n", filepath.Join(dir, "report.html"))
	return nil
}

func readReport(dir string) (*timeline.Report, error) {
	path := dir
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		path = filepath.Join(dir, "report.json")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("cannot read the run: %v (give a run directory holding report.json)", err)
	}
	defer f.Close()
	r, err := timeline.ReadJSON(f)
	if err != nil {
		return nil, usagef("%s: not a scaleout report: %v", path, err)
	}
	return r, nil
}
