package harness

import (
	"fmt"
	"os"
	"runtime"
	"sync"
)

// Runner implements T for programs (the demo): Fatal prints and unwinds the
// calling goroutine, and Close runs the cleanups in reverse order.
type Runner struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	dirs     []string
}

var _ T = (*Runner)(nil)

// Helper is a no-op.
func (r *Runner) Helper() {}

// Cleanup registers fn to run on Close.
func (r *Runner) Cleanup(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, fn)
}

// Errorf reports a failure and continues.
func (r *Runner) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

// Fatal reports a failure and stops the calling goroutine.
func (r *Runner) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// Fatalf reports a failure and stops the calling goroutine (use Run).
func (r *Runner) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// Skipf is a failure for a program: it needs what it asked for.
func (r *Runner) Skipf(format string, args ...any) { r.Fatalf(format, args...) }

// Failed reports whether anything failed.
func (r *Runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// Logf prints a line.
func (r *Runner) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// TempDir returns a new temporary directory removed by Close.
func (r *Runner) TempDir() string {
	d, err := os.MkdirTemp("", "sluice-demo-")
	if err != nil {
		r.Fatalf("temp dir: %v", err)
	}
	r.mu.Lock()
	r.dirs = append(r.dirs, d)
	r.mu.Unlock()
	return d
}

// Run calls fn on a goroutine so that Fatal can stop it, then runs the
// cleanups. It returns false if anything failed.
func (r *Runner) Run(fn func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	r.close()
	return !r.Failed()
}

func (r *Runner) close() {
	r.mu.Lock()
	cs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, d := range r.dirs {
		os.RemoveAll(d)
	}
}
