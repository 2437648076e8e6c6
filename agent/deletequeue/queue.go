// Package deletequeue is the directory through which the CNI plugin hands the
// agent endpoint deletions it could not deliver (the agent was down during
// DEL). Each entry is one JSON file {"containerID": "...", "ifName": "..."};
// the agent processes and removes them at start-up, before it serves, and on
// every resync.
//
// An entry is written to a unique temporary dot-file in the queue directory,
// synced, renamed to its name (one per endpoint, so a repeated DEL replaces
// it with the same content) and the directory synced: concurrent writers and
// crashes never leave a half-written entry under an entry name, and an entry
// written is not lost. Temporary files a crash left behind are removed by
// RemoveStale, never read as entries.
package deletequeue

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicenet/sluice/agent/atomicfile"
)

// DefaultDir is the queue directory under the agent's default run dir.
const DefaultDir = "/var/run/sluice/delete-queue"

// StaleAfter is the age after which a temporary file is taken for a crash's
// leftover rather than a write in progress (which takes milliseconds).
const StaleAfter = time.Minute

// Entry names one endpoint to delete.
type Entry struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// Item is one queue file with its parsed entry, or the error parsing it.
type Item struct {
	Path  string
	Entry Entry
	Err   error
}

// Parse decodes one queue file's content.
func Parse(data []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("decode delete-queue entry: %w", err)
	}
	switch {
	case e.ContainerID == "":
		return e, errors.New("delete-queue entry: containerID is required")
	case e.IfName == "":
		return e, errors.New("delete-queue entry: ifName is required")
	}
	return e, nil
}

// List reads every entry in dir (files starting with "." are writes in
// progress and skipped). A missing dir is an empty queue.
func List(dir string) ([]Item, error) {
	files, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read delete queue %s: %w", dir, err)
	}
	var items []Item
	for _, f := range files {
		if !f.Type().IsRegular() || strings.HasPrefix(f.Name(), ".") {
			continue
		}
		it := Item{Path: filepath.Join(dir, f.Name())}
		data, err := os.ReadFile(it.Path)
		if err == nil {
			it.Entry, err = Parse(data)
		}
		it.Err = err
		items = append(items, it)
	}
	return items, nil
}

// Enqueue adds an entry to dir atomically and durably (temporary dot-file,
// fsync, rename, fsync of the directory), for writers such as the CNI plugin.
func Enqueue(dir string, e Entry) error {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create delete queue %s: %w", dir, err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	name := fileName(e)
	if err := atomicfile.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		return fmt.Errorf("write delete-queue entry: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("write delete-queue entry: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// The queue directory itself is new: make its entry durable too.
		if err := atomicfile.SyncDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("create delete queue %s: %w", dir, err)
		}
	}
	return nil
}

// RemoveStale removes the temporary files in dir last modified before
// before (writes a crash interrupted) and returns their paths. Younger ones
// may be writes in progress and stay. A missing dir has none.
func RemoveStale(dir string, before time.Time) ([]string, error) {
	files, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read delete queue %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, f := range files {
		if !f.Type().IsRegular() || !atomicfile.IsTemp(f.Name()) {
			continue
		}
		info, err := f.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // renamed into place or removed meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !info.ModTime().Before(before) {
			continue
		}
		p := filepath.Join(dir, f.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove stale delete-queue file: %w", err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// fileName derives a stable file name from the entry that is safe for any
// containerID/ifName content: enqueuing the same entry twice overwrites it.
func fileName(e Entry) string {
	sum := sha256.Sum256([]byte(e.ContainerID + "/" + e.IfName))
	return hex.EncodeToString(sum[:16]) + ".json"
}
