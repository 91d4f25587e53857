package run

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scaleout/scaleout/internal/atomicfile"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// smallDisk is a file system that holds limit bytes in all, like a small
// tmpfs: the write that crosses the limit is cut short with ENOSPC.
// Truncating or removing a file frees its bytes.
type smallDisk struct {
	mu    sync.Mutex
	limit int64
	size  map[string]int64 // bytes each file holds
}

func newSmallDisk(limit int64) *smallDisk { return &smallDisk{limit: limit, size: map[string]int64{}} }

func (d *smallDisk) used() (n int64) {
	for _, s := range d.size {
		n += s
	}
	return n
}

func (d *smallDisk) open(f *os.File, err error) (atomicfile.File, error) {
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.size[f.Name()] = 0
	return &diskFile{File: f, d: d}, nil
}

func (d *smallDisk) Create(name string) (atomicfile.File, error) { return d.open(os.Create(name)) }
func (d *smallDisk) CreateTemp(dir, pattern string) (atomicfile.File, error) {
	return d.open(os.CreateTemp(dir, pattern))
}

func (d *smallDisk) Rename(oldpath, newpath string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	d.size[newpath] = d.size[oldpath]
	delete(d.size, oldpath)
	return nil
}

func (d *smallDisk) Remove(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.size, name)
	return os.Remove(name)
}

type diskFile struct {
	*os.File
	d *smallDisk
}

func (f *diskFile) Write(p []byte) (int, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	room := max(f.d.limit-f.d.used(), 0)
	cut := int64(len(p)) > room
	if cut {
		p = p[:room]
	}
	n, err := f.File.Write(p)
	f.d.size[f.Name()] += int64(n)
	if err == nil && cut {
		err = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return n, err
}

func (f *diskFile) Truncate(size int64) error {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.File.Truncate(size); err != nil {
		return err
	}
	f.d.size[f.Name()] = size
	return nil
}

// A run on a disk that fills (issue 11, item 2): its verdict is not a
// pass although every expectation held, the report files are each whole
// or absent (never cut, no temporary file left), requests.jsonl ends at a
// whole line and the report says how many it holds.
func TestRunOnAFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "full.yaml")
	text := `sim: {hpa_sync: 1s}
request: {prompt_tokens: 8, max_tokens: 4}
load: [{name: one, duration: 1s, rate: 40/s}]
observe: {interval: 250ms, after: 0s}
expect: [requests >= 10]
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int64{int64(len(text)) + 3000, int64(len(text)) + 40000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			ctx := context.Background()
			p, err := Prepare(ctx, path, scenario.Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			out := filepath.Join(t.TempDir(), "run")
			res, err := Run(ctx, p, Options{Out: out, Drain: 10 * time.Second, fs: newSmallDisk(limit)})
			if err != nil {
				t.Fatal(err)
			}
			r := res.Report
			if res.WriteErr == nil || !strings.Contains(res.WriteErr.Error(), "no space left on device") {
				t.Fatalf("write error %v", res.WriteErr)
			}
			if len(r.Expectations) == 0 || !r.Expectations[0].OK || r.Verdict != timeline.Unrecorded {
				t.Errorf("verdict %s with %+v, want unrecorded (the expectations held: it would have passed)", r.Verdict, r.Expectations)
			}
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".tmp") {
					t.Errorf("a temporary file is left: %s", e.Name())
				}
			}
			t.Logf("write error: %v; requests %d", res.WriteErr, r.Load.Requests)
			// All three report files, whole, or none.
			var there []string
			for _, name := range []string{"report.json", "timeline.csv", "report.html"} {
				if _, err := os.Stat(filepath.Join(out, name)); err == nil {
					there = append(there, name)
				}
			}
			if len(there) == 3 {
				f, err := os.Open(filepath.Join(out, "report.json"))
				if err != nil {
					t.Fatal(err)
				}
				onDisk, err := timeline.ReadJSON(f)
				f.Close()
				if err != nil || onDisk.Verdict != timeline.Unrecorded {
					t.Errorf("report.json on disk: %v, verdict %v", err, onDisk)
				}
			} else if len(there) > 0 {
				t.Errorf("only %v of the report files were written", there)
			}
			b, err := os.ReadFile(filepath.Join(out, "requests.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > 0 && b[len(b)-1] != '\n' {
				t.Errorf("requests.jsonl ends mid-line: ...%q", b[max(len(b)-30, 0):])
			}
			n := int64(bytes.Count(b, []byte{'\n'}))
			if r.RequestsJSONL == nil || *r.RequestsJSONL != n || n > r.Load.Requests || limit < 5000 && n >= r.Load.Requests {
				t.Errorf("requests.jsonl holds %d lines of %d requests; the report says %v", n, r.Load.Requests, r.RequestsJSONL)
			}
		})
	}
}
