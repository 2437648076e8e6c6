package procsensor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/cilium/ebpf/link"
)

// Running returns the processes alive now (kernel threads left out), each
// as an Exec with ProcFS set: key, parent, credentials, namespaces and
// cgroup come from the kernel's task iterator, exactly as exec events carry
// them; binary (the /proc/<pid>/exe link), argv and cwd come from /proc and
// are empty for a process that exited in between. Time is the process's
// start time. Without the task iterator (Hooks lacks "iter/task") it fails.
func (s *Sensor) Running() ([]Exec, error) {
	prog := s.progs[HookIter]
	if prog == nil {
		return nil, errors.New("list running processes: task iterator not available")
	}
	it, err := link.AttachIter(link.IterOptions{Program: prog})
	if err != nil {
		return nil, fmt.Errorf("attach task iterator: %w", err)
	}
	defer it.Close()
	rd, err := it.Open()
	if err != nil {
		return nil, fmt.Errorf("open task iterator: %w", err)
	}
	defer rd.Close()
	raw, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read task iterator: %w", err)
	}
	if len(raw)%execDataOff != 0 {
		return nil, fmt.Errorf("task iterator wrote %d bytes, not records of %d", len(raw), execDataOff)
	}
	out := make([]Exec, 0, len(raw)/execDataOff)
	for b := raw; len(b) > 0; b = b[execDataOff:] {
		e := decodeExecFixed(b)
		e.ProcFS = true
		e.Time = s.boot.Add(timeNs(e.Key.StartTime))
		procFill(e)
		out = append(out, *e)
	}
	return out, nil
}

// procFill adds binary, argv and cwd from /proc.
func procFill(e *Exec) {
	dir := "/proc/" + strconv.FormatUint(uint64(e.Key.TGID), 10)
	e.Filename, _ = os.Readlink(dir + "/exe")
	e.Cwd, _ = os.Readlink(dir + "/cwd")
	if b, err := os.ReadFile(dir + "/cmdline"); err == nil && len(b) > 0 {
		e.Args = splitArgs(bytes.Clone(b))
	}
}
