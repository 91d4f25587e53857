package record

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// fullFile is a file on a disk that fills after room bytes: the write that
// crosses it is cut short with ENOSPC, as a full tmpfs cuts it.
type fullFile struct {
	room   int
	data   []byte
	synced bool
	closed bool
}

func (f *fullFile) Name() string { return "/run/x/requests.jsonl" }

func (f *fullFile) Write(p []byte) (int, error) {
	if n := f.room - len(f.data); n < len(p) {
		f.data = append(f.data, p[:max(n, 0)]...)
		return max(n, 0), syscall.ENOSPC
	}
	f.data = append(f.data, p...)
	return len(p), nil
}

func (f *fullFile) Truncate(size int64) error {
	f.data = f.data[:size]
	return nil
}

func (f *fullFile) Sync() error  { f.synced = true; return nil }
func (f *fullFile) Close() error { f.closed = true; return nil }

// requests.jsonl on a disk that fills: whatever byte the disk fills at,
// the file ends at a whole line and Count says how many it holds.
func TestLinesStopAtAWholeLine(t *testing.T) {
	var all []string
	for i := range 40 {
		all = append(all, fmt.Sprintf(`{"seq":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", i%7*5)))
	}
	total := len(strings.Join(all, ""))
	for _, room := range []int{0, 1, 30, 63, 64, 65, 200, 511, total - 1, total, total + 100} {
		t.Run(fmt.Sprint(room), func(t *testing.T) {
			f := &fullFile{room: room}
			l := NewLines(f, 64)
			var werr error
			for _, line := range all {
				if _, err := l.Write([]byte(line)); err != nil {
					werr = err
					break
				}
			}
			cerr := l.Close()
			if !f.closed || !f.synced {
				t.Errorf("closed %v, synced %v", f.closed, f.synced)
			}
			full := room < total
			if full != (cerr != nil) || full && !errors.Is(cerr, syscall.ENOSPC) {
				t.Fatalf("room %d of %d: close %v (write %v)", room, total, cerr, werr)
			}
			if full && !strings.HasPrefix(cerr.Error(), "requests.jsonl: ") {
				t.Errorf("the error does not name the file: %v", cerr)
			}
			if len(f.data) > 0 && f.data[len(f.data)-1] != '\n' {
				t.Fatalf("the file ends mid-line: ...%q", f.data[max(len(f.data)-20, 0):])
			}
			n := bytes.Count(f.data, []byte{'\n'})
			if int64(n) != l.Count() || !strings.HasPrefix(strings.Join(all, ""), string(f.data)) {
				t.Errorf("the file holds %d lines, Count says %d", n, l.Count())
			}
			if !full && n != len(all) {
				t.Errorf("with room to spare the file holds %d of %d lines", n, len(all))
			}
			if _, err := l.Write([]byte("{}\n")); err == nil {
				t.Error("a write after Close was taken")
			}
		})
	}
}
