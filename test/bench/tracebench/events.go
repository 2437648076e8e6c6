package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/sluicenet/sluice/agent/api"
)

// execTally counts distinct process_exec events (by exec id) per binary, and
// how many of them named the expected pod.
type execTally struct {
	pod string // namespace/name the storm runs in

	mu         sync.Mutex
	ids        map[string]map[string]bool // binary → exec ids
	attributed map[string]int             // binary → events naming pod
	last       time.Time                  // when the last counted event arrived
	err        error                      // why the stream ended, if it did
}

func newExecTally(pod string) *execTally {
	return &execTally{pod: pod, ids: map[string]map[string]bool{}, attributed: map[string]int{}}
}

// add counts e if it is an exec of one of binaries.
func (t *execTally) add(e *api.ProcessEvent, binaries []string) {
	if e.ProcessExec == nil || e.ProcessExec.Process == nil || !contains(binaries, e.ProcessExec.Process.Binary) {
		return
	}
	p := e.ProcessExec.Process
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids[p.Binary] == nil {
		t.ids[p.Binary] = map[string]bool{}
	}
	if t.ids[p.Binary][p.ExecID] {
		return
	}
	t.ids[p.Binary][p.ExecID] = true
	if p.Pod != nil && p.Pod.Namespace+"/"+p.Pod.Name == t.pod {
		t.attributed[p.Binary]++
	}
	t.last = time.Now()
}

// count returns the distinct execs of binary and how many named the pod.
func (t *execTally) count(binary string) (n, attributed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ids[binary]), t.attributed[binary]
}

func (t *execTally) state() (last time.Time, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last, t.err
}

// eventsQuery is GET /v1/events's query for the exec events of binaries,
// followed (parameter names of api.EventFilter.Query). The agent may send
// other events too: the tally filters again.
func eventsQuery(binaries []string) url.Values {
	q := historyQuery(binaries)
	q.Set("follow", "true")
	return q
}

// historyQuery is eventsQuery without follow: the agent's kept events.
func historyQuery(binaries []string) url.Values {
	quoted := make([]string, len(binaries))
	for i, b := range binaries {
		quoted[i] = regexp.QuoteMeta(b)
	}
	q := url.Values{}
	q.Set("type", api.EventProcessExec)
	q.Set("binary", "^("+strings.Join(quoted, "|")+")$")
	return q
}

// collectExecs reads the agent's kept exec events of binary into t until t
// has want of them, or a read adds none for idle, or max passes. The storm
// is over by then: the events are encoded and decoded after the measured
// window, so the instrument does not compete with the storm for the CPUs
// (a follower decoding every event during the storm did).
func collectExecs(ctx context.Context, socket, binary string, want int, t *execTally, idle, max time.Duration) {
	start, lastGrowth := time.Now(), time.Now()
	for ctx.Err() == nil && time.Since(start) < max {
		before, _ := t.count(binary)
		err := streamEvents(ctx, socket, historyQuery([]string{binary}), func(e *api.ProcessEvent) { t.add(e, []string{binary}) })
		n, _ := t.count(binary)
		if err != nil {
			t.mu.Lock()
			t.err = err
			t.mu.Unlock()
			return
		}
		if n > before {
			lastGrowth = time.Now()
		}
		if n >= want || time.Since(lastGrowth) > idle {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// followExecs streams the agent's exec events of binaries into t until ctx
// ends (GET /v1/events on the agent's unix socket, NDJSON).
func followExecs(ctx context.Context, socket string, binaries []string, t *execTally) {
	err := streamEvents(ctx, socket, eventsQuery(binaries), func(e *api.ProcessEvent) { t.add(e, binaries) })
	t.mu.Lock()
	t.err = err
	if err == nil {
		t.err = io.EOF
	}
	t.mu.Unlock()
}

func streamEvents(ctx context.Context, socket string, q url.Values, fn func(*api.ProcessEvent)) error {
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sluice-agent/v1/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET /v1/events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET /v1/events: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return decodeEvents(resp.Body, fn)
}

// decodeEvents calls fn for each JSON line of r (the export file and the
// API stream have the same lines).
func decodeEvents(r io.Reader, fn func(*api.ProcessEvent)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e api.ProcessEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		fn(&e)
	}
	return sc.Err()
}

// tallyExportDir counts the exec events of binaries in every file of dir:
// the export file and its rotated backups.
func tallyExportDir(dir, pod string, binaries []string) (*execTally, error) {
	t := newExecTally(pod)
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		err = decodeEvents(fh, func(e *api.ProcessEvent) { t.add(e, binaries) })
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return t, nil
}

// collectPosts counts the process_tracepoint events of policy the agent
// kept, reading its history until there are want of them, or a read adds
// none for idle, or max passes; it returns the last count.
func collectPosts(ctx context.Context, socket, policy string, want int, idle, max time.Duration) int {
	q := url.Values{}
	q.Set("type", api.EventProcessTracepoint)
	q.Set("policy", policy)
	start, lastGrowth, best := time.Now(), time.Now(), -1
	for ctx.Err() == nil && time.Since(start) < max {
		var t postTally
		if err := streamEvents(ctx, socket, q, func(e *api.ProcessEvent) { t.add(e, policy) }); err != nil {
			return best
		}
		if n := t.count(); n > best {
			best, lastGrowth = n, time.Now()
		}
		if best >= want || time.Since(lastGrowth) > idle {
			return best
		}
		time.Sleep(200 * time.Millisecond)
	}
	return best
}
