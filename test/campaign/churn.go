package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/sluicenet/sluice/test/harness"
)

// perFile is how many Services or policies one manifest file holds.
const perFile = 10

// churner keeps rewriting the node's Services and policies: every tick one
// file of them is rewritten with shifted ports or rules, or removed and
// written again on a later tick.
type churner struct {
	node               *harness.Node
	services, policies int
	apps               int
	stop               chan struct{}
	done               sync.WaitGroup
	mu                 sync.Mutex
	changes            int
	err                error
	gen                map[string]int
}

// svcFile and polFile render file f of the Services or policies at gen.
func (c *churner) svcFile(f, gen int) string {
	var b strings.Builder
	for i := f * perFile; i < min((f+1)*perFile, c.services); i++ {
		ip := fmt.Sprintf("10.96.%d.%d", 1+i/200, 1+i%200)
		b.WriteString(serviceYAML("soak", fmt.Sprintf("svc-%d", i), ip, fmt.Sprintf("app-%d", i%c.apps), gen%2))
	}
	return b.String()
}

func (c *churner) polFile(f, gen int) string {
	var b strings.Builder
	for i := f * perFile; i < min((f+1)*perFile, c.policies); i++ {
		b.WriteString(policyYAML("soak", fmt.Sprintf("pol-%d", i), fmt.Sprintf("app-%d", i%c.apps), fmt.Sprintf("app-%d", (i+1)%c.apps), gen+i))
	}
	return b.String()
}

// files returns every file name with its renderer.
func (c *churner) files() map[string]func(gen int) string {
	out := map[string]func(int) string{}
	for f := 0; f*perFile < c.services; f++ {
		out[fmt.Sprintf("20-svc-%d.yaml", f)] = func(gen int) string { return c.svcFile(f, gen) }
	}
	for f := 0; f*perFile < c.policies; f++ {
		out[fmt.Sprintf("30-pol-%d.yaml", f)] = func(gen int) string { return c.polFile(f, gen) }
	}
	return out
}

// writeAll writes every file at its current generation.
func (c *churner) writeAll() error {
	for name, render := range c.files() {
		if err := writeManifest(c.node, name, render(c.gen[name])); err != nil {
			return err
		}
	}
	return nil
}

// start writes every file, then changes one every tick until stopChurn.
func (c *churner) start(tick time.Duration) error {
	c.gen = map[string]int{}
	c.stop = make(chan struct{})
	if err := c.writeAll(); err != nil {
		return err
	}
	files := c.files()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	removed := map[string]bool{}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			name := names[rand.IntN(len(names))]
			var err error
			switch {
			case removed[name]:
				err = writeManifest(c.node, name, files[name](c.gen[name]))
				delete(removed, name)
			case rand.IntN(4) == 0:
				err = removeManifest(c.node, name)
				removed[name] = true
			default:
				c.gen[name]++
				err = writeManifest(c.node, name, files[name](c.gen[name]))
			}
			c.mu.Lock()
			c.changes++
			if err != nil && c.err == nil {
				c.err = err
			}
			c.mu.Unlock()
		}
	}()
	return nil
}

// stopChurn stops the changes, writes every file again (none stays
// removed) and returns how many changes were made.
func (c *churner) stopChurn() (int, error) {
	close(c.stop)
	c.done.Wait()
	if err := c.writeAll(); err != nil {
		return c.changes, err
	}
	return c.changes, c.err
}
