// Package deletequeue is the directory through which the CNI plugin hands the
// agent endpoint deletions it could not deliver (the agent was down during
// DEL). Each entry is one JSON file {"containerID": "...", "ifName": "..."};
// the agent processes and removes them at start-up, before it serves.
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

	"github.com/sluicenet/sluice/agent/atomicfile"
)

// DefaultDir is the queue directory under the agent's default run dir.
const DefaultDir = "/var/run/sluice/delete-queue"

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

// Enqueue adds an entry to dir atomically (temporary dot-file, then rename),
// for writers such as the CNI plugin.
func Enqueue(dir string, e Entry) error {
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
	return nil
}

// fileName derives a stable file name from the entry that is safe for any
// containerID/ifName content: enqueuing the same entry twice overwrites it.
func fileName(e Entry) string {
	sum := sha256.Sum256([]byte(e.ContainerID + "/" + e.IfName))
	return hex.EncodeToString(sum[:16]) + ".json"
}
