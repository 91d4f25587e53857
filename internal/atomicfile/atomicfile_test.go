package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fullAfter is the OS file system with room for n more bytes: the write
// that crosses it is cut short with ENOSPC.
type fullAfter struct {
	osFS
	n int
}

type limitedFile struct {
	*os.File
	fs *fullAfter
}

func (f *fullAfter) CreateTemp(dir, pattern string) (File, error) {
	file, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &limitedFile{file, f}, nil
}

func (f *limitedFile) Write(p []byte) (int, error) {
	if len(p) > f.fs.n {
		n, _ := f.File.Write(p[:f.fs.n])
		f.fs.n = 0
		return n, syscall.ENOSPC
	}
	f.fs.n -= len(p)
	return f.File.Write(p)
}

func writer(text string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, text)
		return err
	}
}

// Files are written all, whole, or none: whatever byte the disk fills at,
// no file is cut, the old ones stay as they were, and no temporary file is
// left behind.
func TestWriteAllWholeOrNothing(t *testing.T) {
	a, b := strings.Repeat("a", 5000), strings.Repeat("b", 100<<10)
	for _, room := range []int{0, 10, 4999, 5000, 5001, 5000 + 64<<10, 5000 + 100<<10 - 1, 5000 + 100<<10} {
		t.Run(fmt.Sprint(room), func(t *testing.T) {
			dir := t.TempDir()
			pa, pb := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
			if err := os.WriteFile(pa, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := WriteAll(&fullAfter{n: room}, []Entry{{pa, writer(a)}, {pb, writer(b)}})
			gotA, _ := os.ReadFile(pa)
			gotB, errB := os.ReadFile(pb)
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1+boolInt(err == nil) {
				t.Errorf("files left: %v", entries)
			}
			if err == nil {
				if string(gotA) != a || string(gotB) != b {
					t.Errorf("written: %d and %d bytes", len(gotA), len(gotB))
				}
				return
			}
			if room >= len(a)+len(b) || !strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("room %d: %v", room, err)
			}
			if string(gotA) != "old" || !os.IsNotExist(errB) {
				t.Errorf("a failed write changed the files: report.json %d bytes, report.html %v", len(gotA), errB)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Files made by CreateTemp are readable as os.Create's are.
func TestWriteMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "timeline.csv")
	if err := Write(OS, p, writer("t_s\n")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
}
