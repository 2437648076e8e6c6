package procsensor

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// PollInterval is how often a Reader looks into the ring buffer. The BPF
// programs wake the reader only when much is waiting (a wakeup per event
// costs microseconds on every exec), so an event waits up to this long.
const PollInterval = 20 * time.Millisecond

// Reader reads the sensor's events from its ring buffer. One Reader at a
// time per Sensor: each event is delivered once.
type Reader struct {
	rd       *ringbuf.Reader
	rec      ringbuf.Record
	boot     time.Time
	deadline time.Time
}

// Reader opens a reader of the sensor's ring buffer.
func (s *Sensor) Reader() (*Reader, error) {
	rd, err := ringbuf.NewReader(s.maps[EventsMap])
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", EventsMap, err)
	}
	return &Reader{rd: rd, boot: s.boot}, nil
}

// Read blocks until the next event and decodes it. After Close it returns
// an error wrapping os.ErrClosed; past SetDeadline's time, one wrapping
// os.ErrDeadlineExceeded. An event that does not decode is an error too
// (the Reader stays usable).
func (r *Reader) Read() (Event, error) {
	for {
		d := time.Now().Add(PollInterval)
		if !r.deadline.IsZero() && r.deadline.Before(d) {
			d = r.deadline
		}
		r.rd.SetDeadline(d)
		err := r.rd.ReadInto(&r.rec)
		if errors.Is(err, os.ErrDeadlineExceeded) && (r.deadline.IsZero() || time.Now().Before(r.deadline)) {
			continue
		}
		if err != nil {
			return Event{}, fmt.Errorf("read process events: %w", err)
		}
		return decode(r.rec.RawSample, r.boot)
	}
}

// SetDeadline makes Read return os.ErrDeadlineExceeded once t has passed
// and the ring is empty; the zero Time removes the deadline. Not safe to
// call during Read.
func (r *Reader) SetDeadline(t time.Time) { r.deadline = t }

// Close makes a blocked Read return and releases the reader.
func (r *Reader) Close() error { return r.rd.Close() }
