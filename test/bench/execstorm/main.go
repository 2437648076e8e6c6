// Command execstorm is the load of the exec benchmark (hack/bench-trace.sh):
// N workers, each a goroutine that starts BINARY (no arguments, no
// environment, stdio on /dev/null) and waits for it, over and over, for a
// fixed time. Go starts a child with clone(CLONE_VFORK|CLONE_VM) and execve,
// as posix_spawn does, so the cost measured is the kernel's process creation,
// exec and exit (and what a tracer adds to them), not copying the parent's
// memory.
//
//	execstorm --binary PATH [--workers N] [--duration D] [--warmup D]
//	execstorm --open PATH [--rate N] [--workers N] [--duration D] [--warmup D]
//
// With --open PATH the workers open and close PATH instead (openat(2) and
// close(2) in a tight loop, each worker on its own OS thread): the load of
// the file-monitoring benchmark. --rate caps the total operations per
// second (0: as fast as they go).
//
// It prints one JSON object (Result): every operation it ran (warm-up
// included: a tracer must report all of them) and the rate over the
// measured part.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Result is what execstorm prints.
type Result struct {
	// Execs is every child that exited with status 0 (with --open: every
	// open and close that succeeded), warm-up included.
	Execs int64 `json:"execs"`
	// Measured is the children that exited with status 0 within the
	// measured window; OpsPerSec is Measured / Seconds.
	Measured  int64   `json:"measured"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_s"`
	// TotalSeconds is the whole storm, warm-up included.
	TotalSeconds float64 `json:"total_seconds"`
	// Failed counts children that could not start or exited non-zero.
	Failed     int64  `json:"failed"`
	FirstError string `json:"first_error,omitempty"`
}

func main() {
	binary := flag.String("binary", "", "absolute path of the program to run")
	open := flag.String("open", "", "open and close this file instead of running a program")
	rate := flag.Float64("rate", 0, "with --open: total operations per second (0: unlimited)")
	workers := flag.Int("workers", runtime.NumCPU(), "parallel workers")
	duration := flag.Duration("duration", 5*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 500*time.Millisecond, "load before the measured duration")
	flag.Parse()
	if (*binary == "") == (*open == "") || *workers < 1 || *duration <= 0 || *warmup < 0 || *rate < 0 {
		fmt.Fprintln(os.Stderr, "usage: execstorm --binary PATH | --open PATH [--rate N] [--workers N] [--duration D] [--warmup D]")
		os.Exit(2)
	}
	op := execOp(*binary)
	if *open != "" {
		op = openOp(*open)
	}
	res, err := storm(op, *workers, *rate, *warmup, *duration)
	if err != nil {
		fmt.Fprintln(os.Stderr, "execstorm:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// op is one operation of a worker: nil when it succeeded.
type op func() error

// execOp starts binary (no arguments, no environment, stdio on /dev/null)
// and waits for it to exit 0.
func execOp(binary string) op {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Fprintln(os.Stderr, "execstorm:", err)
		os.Exit(1)
	}
	attr := &syscall.ProcAttr{Env: []string{}, Files: []uintptr{devnull.Fd(), devnull.Fd(), devnull.Fd()}}
	argv := []string{binary}
	return func() error {
		pid, err := syscall.ForkExec(binary, argv, attr)
		if err != nil {
			return fmt.Errorf("start %s: %w", binary, err)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return fmt.Errorf("wait for %d: %w", pid, err)
		}
		if !ws.Exited() || ws.ExitStatus() != 0 {
			return fmt.Errorf("%s: wait status %#x", binary, uint32(ws))
		}
		return nil
	}
}

// openOp opens path read-only (openat(AT_FDCWD, ...)) and closes it.
func openOp(path string) op {
	return func() error {
		fd, err := unix.Openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		return unix.Close(fd)
	}
}

// storm runs the workers and returns their totals. With rate > 0 each
// worker paces itself to rate/workers operations per second.
func storm(do op, workers int, rate float64, warmup, duration time.Duration) (Result, error) {
	var (
		execs, measured, failed atomic.Int64
		measuring, stop         atomic.Bool
		firstErr                error
		errOnce                 sync.Once
	)
	fail := func(err error) {
		failed.Add(1)
		errOnce.Do(func() { firstErr = err })
	}
	var wg sync.WaitGroup
	begin := time.Now()
	for range workers {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var n float64
			for !stop.Load() {
				if rate > 0 {
					if ahead := time.Duration(n/(rate/float64(workers))*float64(time.Second)) - time.Since(begin); ahead > 0 {
						time.Sleep(ahead)
					}
					n++
				}
				if err := do(); err != nil {
					fail(err)
					continue
				}
				execs.Add(1)
				if measuring.Load() {
					measured.Add(1)
				}
			}
		})
	}
	time.Sleep(warmup)
	start := time.Now()
	measuring.Store(true)
	time.Sleep(duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	total := time.Since(begin)

	r := Result{Execs: execs.Load(), Measured: measured.Load(), Seconds: elapsed.Seconds(), TotalSeconds: total.Seconds(), Failed: failed.Load()}
	r.OpsPerSec = float64(r.Measured) / r.Seconds
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	if r.Execs == 0 {
		return r, errors.Join(errors.New("no operation succeeded"), firstErr)
	}
	return r, nil
}
