package manifests

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/source"
)

// Timing defaults.
const (
	// DefaultDebounce is how long the directory must stay quiet after a
	// change before the batch is applied and reported.
	DefaultDebounce = 100 * time.Millisecond
	// maxDelay bounds the wait when changes never stop.
	maxDelay = 2 * time.Second
	// rescanInterval is the periodic full rescan (the fallback when an
	// inotify event was missed or inotify is unavailable).
	rescanInterval = 2 * time.Second
	// racyWindow: a file modified this recently is re-hashed on every scan,
	// since a second write within the mtime granularity may keep mtime and size.
	racyWindow = 2 * time.Second
)

// fileState is what the watcher knows about one manifest file.
type fileState struct {
	size    int64
	mtime   time.Time
	hash    [sha256.Size]byte
	objects []object // the last good parse
	bad     bool     // the current content failed to parse
	// byKey indexes objects by key (built when first needed, dropped when
	// objects change).
	byKey map[objectKey][]int
}

// definitions returns the indexes in st.objects of the objects with key k.
func (st *fileState) definitions(k objectKey) []int {
	if st.byKey == nil {
		st.byKey = make(map[objectKey][]int, len(st.objects))
		for i, o := range st.objects {
			st.byKey[o.key] = append(st.byKey[o.key], i)
		}
	}
	return st.byKey[k]
}

// Watcher watches one directory of manifests.
type Watcher struct {
	dir      string
	log      logrus.FieldLogger
	debounce time.Duration
	rescan   time.Duration
	inotify  bool // false only in tests of the rescan fallback

	files  map[string]*fileState // by base name; only touched by Run
	parses int                   // files parsed, for tests

	changes source.ChangeSet   // Services, EndpointSlices, Pods of the files changed since the last publish
	dirty   map[objectKey]bool // every object of those files
	merged  *merged            // the merged state since the first publish

	mu   sync.Mutex
	snap source.Snapshot

	// flush carries Flush's requests to Run; each is closed when served.
	flush chan chan struct{}
}

// New returns a watcher of dir. Nothing happens until Run.
func New(dir string, log logrus.FieldLogger) *Watcher {
	return &Watcher{
		dir:      dir,
		log:      log.WithField("dir", dir),
		debounce: DefaultDebounce,
		rescan:   rescanInterval,
		inotify:  true,
		files:    make(map[string]*fileState),
		flush:    make(chan chan struct{}),
	}
}

// Flush makes Run read the directory now, without waiting for quiet, and
// returns once the snapshot of what it read went to onChange (when
// anything changed), or when ctx ends. The agent flushes before it answers
// a CNI ADD, so that a Pod manifest written before the ADD gives the pod
// its labels.
func (w *Watcher) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case w.flush <- done:
	case <-ctx.Done():
		return fmt.Errorf("flush manifests: %w", context.Cause(ctx))
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush manifests: %w", context.Cause(ctx))
	}
}

// Snapshot returns a copy of the current merged state (empty before Run
// loaded the directory).
func (w *Watcher) Snapshot() source.Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap.DeepCopy()
}

// Run loads the directory, calls onChange with the initial snapshot, then
// watches the directory and calls onChange once per batch of changes, until
// ctx is done (then it returns nil). onChange runs on Run's goroutine and
// owns the snapshot it gets. Run fails only if the directory cannot be read.
func (w *Watcher) Run(ctx context.Context, onChange func(source.Snapshot)) error {
	if fi, err := os.Stat(w.dir); err != nil {
		return fmt.Errorf("manifests directory: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("manifests directory %s: not a directory", w.dir)
	}
	kick := make(chan struct{}, 1)
	if w.inotify {
		if n, err := watchDir(w.dir, kick); err != nil {
			w.log.WithError(err).Warn("No inotify; relying on the periodic rescan")
		} else {
			defer n.Close()
		}
	}
	w.scan()
	onChange(w.publish())

	ticker := time.NewTicker(w.rescan)
	defer ticker.Stop()
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	var first time.Time // when the pending batch started; zero if none
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
			// Wait for quiet, but not forever.
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			quiet.Reset(min(w.debounce, max(0, maxDelay-now.Sub(first))))
			continue
		case <-ticker.C:
		case <-quiet.C:
		case done := <-w.flush:
			if w.scan() {
				onChange(w.publish())
			}
			close(done)
			continue
		}
		first = time.Time{}
		if w.scan() {
			onChange(w.publish())
		}
	}
}

// publish merges the per-file state into a new snapshot, stores it and
// returns a copy for the callback.
func (w *Watcher) publish() source.Snapshot {
	changes := w.changes.Take()
	w.mu.Lock()
	defer w.mu.Unlock()
	// Past a share of all objects, a full merge is cheaper than one per
	// object (a large file loaded or rewritten).
	if w.merged == nil || len(w.dirty) > 64 && 2*len(w.dirty) > len(w.merged.byKey) {
		if w.merged == nil {
			changes = nil // the first snapshot
		}
		s, byKey := mergeIndexed(w.files, w.log)
		w.merged = newMerged(w.files, s, byKey)
	} else {
		for k := range w.dirty {
			w.merged.remerge(w.files, k, w.log)
		}
	}
	w.dirty = nil
	w.snap = w.merged.snap // its lists change only under w.mu
	w.snap.Changes = changes
	return w.snap.DeepCopy()
}

// isManifest reports whether a directory entry name is a manifest file.
// Hidden files (editor swap files, Kubernetes' ..data volume links) are not.
func isManifest(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch filepath.Ext(name) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// scan brings w.files up to date with the directory and reports whether any
// file's objects changed. Only new or changed files are parsed.
func (w *Watcher) scan() bool {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		// Keep the last state: an unreadable directory is not an empty one.
		w.log.WithError(err).Error("Cannot read manifests directory; keeping the last state")
		return false
	}
	now := time.Now()
	seen := make(map[string]bool, len(entries))
	changed := false
	for _, e := range entries {
		if !isManifest(e.Name()) {
			continue
		}
		fi, err := os.Stat(filepath.Join(w.dir, e.Name())) // follows symlinks
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		seen[e.Name()] = true
		if w.update(e.Name(), fi, now) {
			changed = true
		}
	}
	for name, st := range w.files {
		if !seen[name] {
			delete(w.files, name)
			w.record(name, st.objects, nil)
			w.log.WithField("file", name).Info("Manifest file removed")
			changed = changed || len(st.objects) > 0
		}
	}
	return changed
}

// update re-reads one file if its size or mtime changed (or it changed
// recently) and re-parses it if its content changed. A bad file keeps its
// last good objects.
func (w *Watcher) update(name string, fi os.FileInfo, now time.Time) bool {
	st := w.files[name]
	if st != nil && st.size == fi.Size() && st.mtime.Equal(fi.ModTime()) && now.Sub(fi.ModTime()) > racyWindow {
		return false
	}
	log := w.log.WithField("file", name)
	data, err := os.ReadFile(filepath.Join(w.dir, name))
	if err != nil {
		log.WithError(err).Error("Cannot read manifest file; keeping its last good objects")
		return false
	}
	if st == nil {
		st = &fileState{}
		w.files[name] = st
	}
	st.size, st.mtime = fi.Size(), fi.ModTime()
	sum := sha256.Sum256(data)
	if sum == st.hash {
		return false // touched, or rewritten with the same content
	}
	st.hash = sum
	w.parses++
	objs, err := parseFile(name, data)
	if err != nil {
		st.bad = true
		log.WithError(err).Errorf("Bad manifest file %s, keeping its last good objects (%d)", name, len(st.objects))
		return false
	}
	st.bad = false
	log.WithField("objects", len(objs)).Debug("Manifest file loaded")
	changed := !sameObjects(st.objects, objs)
	if changed {
		w.record(name, st.objects, objs)
	}
	st.objects, st.byKey = objs, nil
	return changed
}

// record notes that file defines objs instead of old: for the next
// snapshot's merge and its Changes, the file's old and new objects,
// whichever file's definition wins.
func (w *Watcher) record(file string, old, objs []object) {
	if w.merged != nil {
		w.merged.define(file, old, objs)
	}
	if w.dirty == nil {
		w.dirty = map[objectKey]bool{}
	}
	for _, o := range slices.Concat(old, objs) {
		w.dirty[o.key] = true
		switch {
		case o.svc != nil:
			w.changes.Add(source.KindService, o.key.namespace, o.key.name)
		case o.slice != nil:
			w.changes.Add(source.KindEndpointSlice, o.key.namespace, o.key.name)
		case o.pod != nil:
			w.changes.Add(source.KindPod, o.key.namespace, o.key.name)
		}
	}
}

// sameObjects reports whether two parses define the same objects (so that
// a comment or formatting change does not cause a callback).
func sameObjects(a, b []object) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.doc, y.doc = 0, 0
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
