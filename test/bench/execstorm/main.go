// Command execstorm is the load of the exec benchmark (hack/bench-trace.sh):
// N workers, each a goroutine that starts BINARY (no arguments, no
// environment, stdio on /dev/null) and waits for it, over and over, for a
// fixed time. Go starts a child with clone(CLONE_VFORK|CLONE_VM) and execve,
// as posix_spawn does, so the cost measured is the kernel's process creation,
// exec and exit (and what a tracer adds to them), not copying the parent's
// memory.
//
//	execstorm --binary PATH [--workers N] [--duration D] [--warmup D]
//
// It prints one JSON object (Result): every exec it ran (warm-up included:
// a tracer must report all of them) and the rate over the measured part.
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
)

// Result is what execstorm prints.
type Result struct {
	// Execs is every child that exited with status 0, warm-up included.
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
	binary := flag.String("binary", "", "absolute path of the program to run (required)")
	workers := flag.Int("workers", runtime.NumCPU(), "parallel workers")
	duration := flag.Duration("duration", 5*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 500*time.Millisecond, "load before the measured duration")
	flag.Parse()
	if *binary == "" || *workers < 1 || *duration <= 0 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "usage: execstorm --binary PATH [--workers N] [--duration D] [--warmup D]")
		os.Exit(2)
	}
	res, err := storm(*binary, *workers, *warmup, *duration)
	if err != nil {
		fmt.Fprintln(os.Stderr, "execstorm:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// storm runs the workers and returns their totals.
func storm(binary string, workers int, warmup, duration time.Duration) (Result, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return Result{}, err
	}
	defer devnull.Close()
	attr := &syscall.ProcAttr{Env: []string{}, Files: []uintptr{devnull.Fd(), devnull.Fd(), devnull.Fd()}}
	argv := []string{binary}

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
	for range workers {
		wg.Go(func() {
			for !stop.Load() {
				pid, err := syscall.ForkExec(binary, argv, attr)
				if err != nil {
					fail(fmt.Errorf("start %s: %w", binary, err))
					continue
				}
				var ws syscall.WaitStatus
				if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
					fail(fmt.Errorf("wait for %d: %w", pid, err))
					continue
				}
				if !ws.Exited() || ws.ExitStatus() != 0 {
					fail(fmt.Errorf("%s: wait status %#x", binary, uint32(ws)))
					continue
				}
				execs.Add(1)
				if measuring.Load() {
					measured.Add(1)
				}
			}
		})
	}
	begin := time.Now()
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
		return r, errors.Join(errors.New("no exec succeeded"), firstErr)
	}
	return r, nil
}
