package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/sluicenet/sluice/agent/api"
)

// Exporter defaults (the agent's --export-file-* flags).
const (
	DefaultExportMaxSizeMB  = 10
	DefaultExportMaxBackups = 5
)

// flushSize is how much pending output makes Export write it out: lines
// are written whole, so a rotation never cuts one.
const flushSize = 64 << 10

// ExportConfig configures the JSON-lines exporter.
type ExportConfig struct {
	// Filename is the file written; rotated files sit next to it with a
	// timestamp in their name.
	Filename string
	// MaxSizeMB is the size at which the file is rotated
	// (DefaultExportMaxSizeMB when <= 0).
	MaxSizeMB int
	// MaxBackups is how many rotated files are kept (0 keeps all).
	MaxBackups int
	// Allow and Deny are the filter lists (see ParseExportFilters).
	Allow, Deny string
}

// Exporter writes process events as JSON lines (the api.ProcessEvent
// encoding, one object a line) to a size-rotated file. Lines reach the file
// when flushSize bytes are pending, at Flush and at Close.
type Exporter struct {
	filters ExportFilters

	mu  sync.Mutex
	out *lumberjack.Logger
	buf bytes.Buffer
	enc *json.Encoder
}

// NewExporter opens (creating it and its directory when missing) the file
// of cfg and parses its filters.
func NewExporter(cfg ExportConfig) (*Exporter, error) {
	if cfg.Filename == "" {
		return nil, errors.New("export: no file name")
	}
	fs, err := ParseExportFilterLists(cfg.Allow, cfg.Deny)
	if err != nil {
		return nil, err
	}
	if cfg.MaxSizeMB <= 0 {
		cfg.MaxSizeMB = DefaultExportMaxSizeMB
	}
	x := &Exporter{filters: fs, out: &lumberjack.Logger{
		Filename: cfg.Filename, MaxSize: cfg.MaxSizeMB, MaxBackups: max(cfg.MaxBackups, 0),
	}}
	x.enc = json.NewEncoder(&x.buf)
	// An empty write opens the file now, so a bad path fails here.
	if _, err := x.out.Write(nil); err != nil {
		return nil, fmt.Errorf("export to %s: %w", cfg.Filename, err)
	}
	return x, nil
}

// Export queues ev's line when the filters pass it, and writes the queue
// out once flushSize bytes are pending. It reports a failed write (the
// lines that failed are dropped).
func (x *Exporter) Export(ev *api.ProcessEvent) error {
	if !x.filters.Pass(ev) {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.enc.Encode(ev); err != nil {
		return fmt.Errorf("encode process event: %w", err)
	}
	if x.buf.Len() < flushSize {
		return nil
	}
	return x.flush()
}

// Flush writes the pending lines out.
func (x *Exporter) Flush() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.flush()
}

// flush writes x.buf out; the caller holds x.mu.
func (x *Exporter) flush() error {
	if x.buf.Len() == 0 {
		return nil
	}
	_, err := x.out.Write(x.buf.Bytes())
	x.buf.Reset()
	if err != nil {
		return fmt.Errorf("export to %s: %w", x.out.Filename, err)
	}
	return nil
}

// Close writes the pending lines and closes the file.
func (x *Exporter) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	err := x.flush()
	if cerr := x.out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", x.out.Filename, cerr)
	}
	return err
}
