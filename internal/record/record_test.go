package record

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/timeline"
)

// failAfter accepts n writes, then fails.
type failAfter struct {
	n   int
	buf bytes.Buffer
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return f.buf.Write(p)
}

func TestRecorder(t *testing.T) {
	w := &failAfter{n: 2}
	tl := timeline.New(timeline.Config{Interval: time.Second})
	var also []string
	r := New(w, tl, []string{"warm", "push"}, func(req *measure.Request, stage string) error {
		also = append(also, stage)
		return nil
	})
	for i := range 4 {
		r.Add(&measure.Request{Stage: i % 2, Seq: uint64(i), Scheduled: -1, Sent: time.Duration(i) * time.Millisecond, E2E: time.Millisecond, Status: 200})
	}
	closed := false
	err := r.Close(func() error { closed = true; return nil })
	if !closed || err == nil || err.Error() != "disk full" {
		t.Fatalf("Close: ran %v, err %v; want the first write error", closed, err)
	}
	lines := strings.Split(strings.TrimSpace(w.buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"stage":"warm"`) || !strings.Contains(lines[1], `"stage":"push"`) {
		t.Errorf("requests.jsonl before the failure:\n%s", w.buf.String())
	}
	if strings.Join(also, ",") != "warm,push" {
		t.Errorf("the further encoding saw %v, want the two requests written", also)
	}
	if got := tl.Report(time.Second, timeline.Meta{}).Load.Requests; got != 4 {
		t.Errorf("timeline counted %d requests, want all 4 despite the write error", got)
	}
}
