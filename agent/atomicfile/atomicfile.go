// Package atomicfile replaces files atomically: the new content goes to a
// temporary dot-file in the same directory, which is synced to disk, given
// its mode and renamed over the target, so a reader (the agent's watchers,
// the kubelet's CNI config loader, the agent after a crash) sees the old or
// the new content, never part of it. Temporary names start with "." so
// directory scanners that skip dot-files never pick one up.
//
// It lives under internal/ rather than agent/ because identity (below agent
// in the layering) and install/ use it too.
package atomicfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tempSuffix precedes the random digits os.CreateTemp puts at the end of a
// temporary name.
const tempSuffix = ".tmp"

// WriteFile replaces path with data, mode perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	})
}

// Write replaces path with what write writes, mode perm. The directory must
// exist. On any failure path is left as it was and the temporary file is
// removed.
func Write(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+tempSuffix+"*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return nil
}

// IsTemp reports whether name (a base name) is one of Write's temporary
// files: a write in progress, or one a crash left behind.
func IsTemp(name string) bool {
	i := strings.LastIndex(name, tempSuffix)
	if !strings.HasPrefix(name, ".") || i < 1 {
		return false
	}
	digits := name[i+len(tempSuffix):]
	return digits != "" && strings.Trim(digits, "0123456789") == ""
}

// SyncDir flushes dir itself to disk, making the creations, renames and
// removals of its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
