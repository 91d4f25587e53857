// Package atomicfile writes files whole or not at all: each to a temporary
// name in the same directory, synced, then renamed over its name, so a
// full disk or a failed write leaves the old file or none, never a cut
// one. FS is what it writes through: the OS, or a test's.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is an open file as the run directory uses it.
type File interface {
	io.Writer
	Name() string
	Truncate(size int64) error
	Sync() error
	Close() error
}

// FS creates, renames and removes files.
type FS interface {
	Create(name string) (File, error)
	CreateTemp(dir, pattern string) (File, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
}

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) Create(name string) (File, error) { return os.Create(name) }

// CreateTemp makes the file readable as os.Create's are (os.CreateTemp
// makes it private).
func (osFS) CreateTemp(dir, pattern string) (File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error             { return os.Remove(name) }

// Entry is one file to write: its path and what it holds.
type Entry struct {
	Path   string
	Render func(io.Writer) error
}

// Write writes one file whole or not at all.
func Write(fsys FS, path string, render func(io.Writer) error) error {
	return WriteAll(fsys, []Entry{{path, render}})
}

// WriteAll writes every entry to its temporary name first, and renames them
// into place only when all of them were written: either every file is
// written whole or none is. (A rename that fails after others succeeded
// leaves those in place; renames within a directory do not fail in
// practice.) Errors name the file.
func WriteAll(fsys FS, entries []Entry) error {
	var staged []string
	discard := func() {
		for _, tmp := range staged {
			_ = fsys.Remove(tmp)
		}
	}
	for _, e := range entries {
		tmp, err := stage(fsys, e)
		if err != nil {
			discard()
			return fmt.Errorf("%s: %w", filepath.Base(e.Path), err)
		}
		staged = append(staged, tmp)
	}
	for i, e := range entries {
		if err := fsys.Rename(staged[i], e.Path); err != nil {
			staged = staged[i:]
			discard()
			return fmt.Errorf("%s: %w", filepath.Base(e.Path), err)
		}
	}
	return nil
}

// stage writes an entry to a temporary file beside it, synced and closed,
// and returns its name; on an error nothing is left behind.
func stage(fsys FS, e Entry) (string, error) {
	f, err := fsys.CreateTemp(filepath.Dir(e.Path), "."+filepath.Base(e.Path)+".*.tmp")
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	err = e.Render(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = fsys.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
