package run

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/scaleout/scaleout/internal/atomicfile"
	"github.com/scaleout/scaleout/timeline"
)

// shardRun is one shard's run directory, read.
type shardRun struct {
	dir      string
	report   *timeline.Report
	hist     *timeline.Histograms
	scenario []byte // scenario.yaml; nil when the directory has none
}

// readShard reads a shard's run directory. Anything missing or unreadable
// is a usage error naming the file and what to do.
func readShard(dir string) (*shardRun, error) {
	s := &shardRun{dir: dir}
	read := func(name string, fn func(io.Reader) error) error {
		path := filepath.Join(dir, name)
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return usagef("%s: no %s: give the run directory of a shard (scaleout run --shard K/N --start-at TIME writes one)", dir, name)
			}
			return usagef("%s: %v", path, err)
		}
		defer f.Close()
		if err := fn(f); err != nil {
			return usagef("%s: not a scaleout %s: %v", path, name, err)
		}
		return nil
	}
	if err := read(reportFile, func(r io.Reader) (err error) { s.report, err = timeline.ReadJSON(r); return }); err != nil {
		return nil, err
	}
	if err := read(histogramsFile, func(r io.Reader) (err error) { s.hist, err = timeline.ReadHistograms(r); return }); err != nil {
		return nil, err
	}
	if raw, err := os.ReadFile(filepath.Join(dir, scenarioFile)); err == nil {
		s.scenario = raw
	}
	return s, nil
}

// Merge joins the run directories of a sharded run's shards (in any
// order) into one run directory at out, and returns its report. The
// shards must be every shard of one run, once: the same scenario (name and
// scenario.yaml), the same shard count and common start; anything else is
// refused (a usage error, exit 2) naming the directories.
//
// The merged run (timeline.Merge) keeps shard 0's observation (series,
// events, KPIs, baseline, guard) and adds the load: counts, tokens, every
// latency distribution from histograms.json, the rows on the common clock.
// requests.jsonl is every shard's, whole, in the order requests finished.
// The expectations are evaluated again on the merged report, the client
// self-check runs on the merged load, and every shard's own self-check is
// kept: a shard that could not deliver its share fails the merged run.
func Merge(dirs []string, out string) (*timeline.Report, error) {
	if len(dirs) == 0 {
		return nil, usagef("merge needs the run directories of the shards")
	}
	for _, d := range dirs {
		if filepath.Clean(d) == filepath.Clean(out) {
			return nil, usagef("--out %s is one of the shards' run directories: give the merged run a directory of its own", out)
		}
	}
	var shards []*shardRun
	for _, d := range dirs {
		s, err := readShard(d)
		if err != nil {
			return nil, err
		}
		shards = append(shards, s)
	}
	if err := sameRun(shards); err != nil {
		return nil, err
	}
	sort.Slice(shards, func(i, j int) bool { return shards[i].hist.Shard.Index < shards[j].hist.Shard.Index })
	parts := make([]timeline.Part, len(shards))
	for i, s := range shards {
		r := *s.report
		r.Notes = slices.DeleteFunc(slices.Clone(r.Notes), func(n string) bool { return strings.HasPrefix(n, shardNote) })
		parts[i] = timeline.Part{Report: &r, Histograms: s.hist, Label: fmt.Sprintf("shard %d/%d", s.hist.Shard.Index, s.hist.Shard.Count)}
	}
	rep, hist, err := timeline.Merge(parts)
	if err != nil {
		return nil, usagef("cannot merge %s: %v", strings.Join(dirs, ", "), err)
	}
	first := shards[0]
	n := first.hist.Shard.Count
	rep.Notes = append(rep.Notes, fmt.Sprintf("merged from %d shards started together at %s (%s); the series, events and KPIs are shard 0's",
		n, first.hist.Shard.StartAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"), strings.Join(dirs, ", ")),
		"server: the vLLM counters are not compared for a sharded run (each shard saw the servers count the others' requests too)")

	// The expectations, on the merged report.
	var names []string
	for _, s := range rep.Series {
		names = append(names, s.Name)
	}
	var list []*timeline.Expectation
	for _, text := range hist.Expect {
		ex, err := timeline.ParseExpectation(text, names)
		if err != nil {
			return nil, usagef("%s: histograms.json: expectation %q: %v", first.dir, text, err)
		}
		list = append(list, ex)
	}
	rep.Expectations = evaluate(list, rep)
	if rep.Expectations == nil {
		rep.Expectations = []timeline.Outcome{}
	}
	// The client: the merged load, then every shard's own check.
	timeline.CheckClient(rep)
	for _, s := range shards {
		cl := s.report.ClientLimited
		if cl == nil {
			continue
		}
		tag := fmt.Sprintf("shard %d/%d", s.hist.Shard.Index, n)
		var parts []string
		for _, st := range cl.Stages {
			st.Stage += " (" + tag + ")"
			if rep.ClientLimited == nil {
				rep.ClientLimited = &timeline.ClientLimited{}
			}
			rep.ClientLimited.Stages = append(rep.ClientLimited.Stages, st)
			parts = append(parts, st.Stage+": "+strings.Join(st.Reasons, "; "))
		}
		rep.Expectations = append(rep.Expectations, timeline.Outcome{Expr: tag + ": the client delivered its share of the load",
			Detail: "client_limited: " + strings.Join(parts, "; ")})
	}
	// The guard is shard 0's; a strict one that failed there fails here.
	for _, o := range first.report.Expectations {
		if o.Expr == strictGuardExpr {
			rep.Expectations = append(rep.Expectations, o)
		}
	}

	// The run directory: requests.jsonl, then the report files.
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, cannotRun(fmt.Errorf("cannot create %s: %w", out, err))
	}
	lines, err := mergeRequests(shards, filepath.Join(out, requestsFile))
	if err != nil {
		return nil, cannotRun(err)
	}
	rep.RequestsJSONL = &lines
	if lines != rep.Load.Requests {
		rep.Notes = append(rep.Notes, fmt.Sprintf("requests.jsonl holds %d of the %d requests (a shard's file was short)", lines, rep.Load.Requests))
	}
	rep.Verdict = Decide(rep, false, nil)
	d := &runDir{dir: out, fs: atomicfile.OS}
	if first.scenario != nil {
		raw := first.scenario
		if err := atomicfile.Write(atomicfile.OS, filepath.Join(out, scenarioFile), func(w io.Writer) error { _, err := w.Write(raw); return err }); err != nil {
			return nil, cannotRun(err)
		}
	}
	if err := d.writeReport(rep, hist); err != nil {
		return nil, cannotRun(err)
	}
	return rep, nil
}

// sameRun checks that the shards are every shard of one run, once.
func sameRun(shards []*shardRun) error {
	first := shards[0]
	for _, s := range shards {
		if s.hist.Shard == nil {
			return usagef("%s is not a shard of a sharded run (its histograms.json names no shard): merge the directories of scaleout run --shard K/N", s.dir)
		}
	}
	n, start := first.hist.Shard.Count, first.hist.Shard.StartAt
	seen := map[int]string{}
	for _, s := range shards {
		sh := s.hist.Shard
		switch {
		case s.report.Scenario != first.report.Scenario:
			return usagef("%s is a run of scenario %q, %s of %q: merge the shards of one run", s.dir, s.report.Scenario, first.dir, first.report.Scenario)
		case s.scenario != nil && first.scenario != nil && !bytes.Equal(s.scenario, first.scenario):
			return usagef("%s and %s ran different scenario files (scenario.yaml differs): merge the shards of one run", s.dir, first.dir)
		case sh.Count != n:
			return usagef("%s is shard %d of %d, %s one of %d: merge the shards of one run", s.dir, sh.Index, sh.Count, first.dir, n)
		case !sh.StartAt.Equal(start):
			return usagef("%s started at %s, %s at %s: merge the shards of one run (one --start-at)", s.dir, sh.StartAt.Format("2006-01-02T15:04:05.999Z07:00"), first.dir, start.Format("2006-01-02T15:04:05.999Z07:00"))
		}
		if d, dup := seen[sh.Index]; dup {
			return usagef("%s and %s are both shard %d/%d: give each shard once", d, s.dir, sh.Index, n)
		}
		seen[sh.Index] = s.dir
	}
	var missing []string
	for k := range n {
		if _, ok := seen[k]; !ok {
			missing = append(missing, fmt.Sprintf("%d/%d", k, n))
		}
	}
	if len(missing) > 0 {
		return usagef("shard %s missing: a merge needs every shard of the run (%d given of %d)", strings.Join(missing, ", "), len(shards), n)
	}
	return nil
}

// mergeRequests writes every shard's requests.jsonl to path, whole, in the
// order the requests finished (each file is in that order already: lines
// are written as requests end), and returns the lines written.
func mergeRequests(shards []*shardRun, path string) (int64, error) {
	h := &lineHeap{}
	for _, s := range shards {
		f, err := os.Open(filepath.Join(s.dir, requestsFile))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", s.dir, err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		src := &lineSource{name: f.Name(), sc: sc}
		if ok, err := src.next(); err != nil {
			return 0, err
		} else if ok {
			heap.Push(h, src)
		}
	}
	var n int64
	err := atomicfile.Write(atomicfile.OS, path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		for h.Len() > 0 {
			src := (*h)[0]
			if _, err := bw.Write(src.line); err != nil {
				return err
			}
			if err := bw.WriteByte('\n'); err != nil {
				return err
			}
			n++
			ok, err := src.next()
			if err != nil {
				return err
			}
			if ok {
				heap.Fix(h, 0)
			} else {
				heap.Pop(h)
			}
		}
		return bw.Flush()
	})
	return n, err
}

// lineSource is one shard's requests.jsonl, read a line at a time.
type lineSource struct {
	name string
	sc   *bufio.Scanner
	line []byte
	done float64 // when the current line's request ended, ms from the epoch
	no   int
}

func (s *lineSource) next() (bool, error) {
	if !s.sc.Scan() {
		if err := s.sc.Err(); err != nil {
			return false, fmt.Errorf("%s: %w", s.name, err)
		}
		return false, nil
	}
	s.no++
	s.line = slices.Clone(s.sc.Bytes())
	var t struct {
		Sent float64 `json:"sent_ms"`
		E2E  float64 `json:"e2e_ms"`
	}
	if err := json.Unmarshal(s.line, &t); err != nil {
		return false, fmt.Errorf("%s line %d: not a request line: %w", s.name, s.no, err)
	}
	s.done = t.Sent + t.E2E
	return true, nil
}

type lineHeap []*lineSource

func (h lineHeap) Len() int           { return len(h) }
func (h lineHeap) Less(i, j int) bool { return h[i].done < h[j].done }
func (h lineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *lineHeap) Push(x any)        { *h = append(*h, x.(*lineSource)) }
func (h *lineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
