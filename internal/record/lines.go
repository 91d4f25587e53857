package record

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is the file Lines writes to (an *os.File).
type File interface {
	io.Writer
	Name() string
	Truncate(size int64) error
	Sync() error
	Close() error
}

// Lines is requests.jsonl on disk: whole lines, buffered and written in
// large writes, so the file always ends at the end of a line. After the
// first failed write (a full disk) it cuts the file back to the last whole
// line it holds and takes nothing more. It is not safe for concurrent use
// (the Recorder holds its lock).
type Lines struct {
	f       File
	buf     []byte
	limit   int
	size    int64 // bytes in f: whole lines only
	n       int64 // lines in f
	pending int64 // lines in buf
	err     error
	closed  bool
}

// NewLines writes to f through a buffer of size bytes.
func NewLines(f File, size int) *Lines {
	return &Lines{f: f, buf: make([]byte, 0, size), limit: size}
}

// Write takes whole lines (p ends with a newline), as Recorder writes them.
func (l *Lines) Write(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.closed {
		return 0, os.ErrClosed
	}
	if len(l.buf) > 0 && len(l.buf)+len(p) > l.limit {
		if err := l.flush(); err != nil {
			return 0, err
		}
	}
	l.buf = append(l.buf, p...)
	l.pending += int64(bytes.Count(p, []byte{'\n'}))
	if len(l.buf) >= l.limit {
		if err := l.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (l *Lines) flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	n, err := l.f.Write(l.buf)
	if err == nil && n < len(l.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		// Keep the whole lines that reached the file, cut the rest.
		l.err = fmt.Errorf("%s: %w", filepath.Base(l.f.Name()), err)
		whole := l.buf[:bytes.LastIndexByte(l.buf[:max(n, 0)], '\n')+1]
		if n > len(whole) {
			if terr := l.f.Truncate(l.size + int64(len(whole))); terr != nil {
				l.err = fmt.Errorf("%w (and cutting it back to its last whole line failed: %v)", l.err, terr)
			}
		}
		l.size += int64(len(whole))
		l.n += int64(bytes.Count(whole, []byte{'\n'}))
		l.buf, l.pending = nil, 0
		return l.err
	}
	l.size += int64(n)
	l.n += l.pending
	l.buf, l.pending = l.buf[:0], 0
	return nil
}

// Close writes what is buffered, syncs and closes the file; it returns the
// first error the file gave (idempotent).
func (l *Lines) Close() error {
	if l.closed {
		return l.err
	}
	l.closed = true
	if l.err == nil {
		l.flush()
	}
	if err := l.f.Sync(); err != nil && l.err == nil {
		l.err = fmt.Errorf("%s: %w", filepath.Base(l.f.Name()), err)
	}
	if err := l.f.Close(); err != nil && l.err == nil {
		l.err = fmt.Errorf("%s: %w", filepath.Base(l.f.Name()), err)
	}
	return l.err
}

// Count is how many whole lines the file holds.
func (l *Lines) Count() int64 { return l.n }
