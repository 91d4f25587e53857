package job

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A shard's run directory goes back through its pod's log: at the end of
// the run the pod prints the directory as a gzip-compressed tar, base64 in
// lines of 76 characters, between a begin line (the archive's length and
// sha256) and an end line. `scaleout job collect` reads the log (get on
// pods/log, nothing more) and checks length and digest, so a log cut by
// the kubelet's rotation (containerLogMaxSize, 10 MiB by default) is told
// apart from a whole archive.
const (
	archiveBegin = "scaleout-archive-begin v1"
	archiveEnd   = "scaleout-archive-end"
	// LogArchiveWarn is the base64 size over which the pod warns that the
	// archive may not survive the kubelet's log rotation at its default
	// 10 MiB (with room for the run's own output).
	LogArchiveWarn = 8 << 20
)

// ErrNoArchive is returned when a log holds no archive's begin line.
var ErrNoArchive = errors.New("no run directory archive in the log")

// Archive packs the regular files under dir, in walk (lexical) order, as a
// gzip-compressed tar.
func Archive(dir string) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteArchive prints archive to w between its begin and end lines and
// returns the bytes written.
func WriteArchive(w io.Writer, archive []byte) (int, error) {
	sum := sha256.Sum256(archive)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d %s\n", archiveBegin, len(archive), hex.EncodeToString(sum[:]))
	enc := base64.StdEncoding.EncodeToString(archive)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteByte('\n')
		enc = enc[76:]
	}
	if enc != "" {
		b.WriteString(enc)
		b.WriteByte('\n')
	}
	b.WriteString(archiveEnd + "\n")
	return io.WriteString(w, b.String())
}

// ReadArchive finds the last archive in a log and returns it, checked
// against the length and sha256 of its begin line.
func ReadArchive(log io.Reader) ([]byte, error) {
	sc := bufio.NewScanner(log)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var (
		in, found, ended bool
		size             int
		sum              string
		enc              strings.Builder
	)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, archiveBegin+" "):
			f := strings.Fields(strings.TrimPrefix(line, archiveBegin))
			if len(f) != 2 {
				return nil, fmt.Errorf("archive begin line %q: want length and sha256", line)
			}
			n, err := strconv.Atoi(f[0])
			if err != nil {
				return nil, fmt.Errorf("archive begin line %q: %w", line, err)
			}
			in, found, ended, size, sum = true, true, false, n, f[1]
			enc.Reset()
		case in && line == archiveEnd:
			in, ended = false, true
		case in:
			enc.WriteString(line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNoArchive
	}
	if !ended {
		return nil, errors.New("the archive in the log has no end line: the log is cut (the pod still running, or the kubelet's log rotation)")
	}
	data, err := base64.StdEncoding.DecodeString(enc.String())
	if err != nil {
		return nil, fmt.Errorf("the archive in the log does not decode: %w", err)
	}
	got := sha256.Sum256(data)
	if len(data) != size || hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("the archive in the log is %d bytes with sha256 %x; its begin line says %d bytes, %s", len(data), got, size, sum)
	}
	return data, nil
}

// Extract unpacks an archive made by Archive into dir, which it creates.
// Only regular files with local names are accepted.
func Extract(archive []byte, dir string) error {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(filepath.FromSlash(h.Name)) {
			return fmt.Errorf("archive entry %q: only files under the run directory", h.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}
