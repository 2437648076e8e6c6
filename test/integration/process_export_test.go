package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// exportedEvents reads every JSON line of the export file.
func exportedEvents(t *testing.T, path string) []*api.ProcessEvent {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []*api.ProcessEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev api.ProcessEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "export line %q", sc.Text())
		out = append(out, &ev)
	}
	require.NoError(t, sc.Err())
	return out
}

// A burst of execs in a pod above --process-rate-limit: exec events are
// dropped between a THROTTLE_START and a THROTTLE_STOP that counts them,
// exits never are, and the export file (allow list: the pod's namespace)
// holds exactly what the agent published for the pod.
func TestPrivilegedProcessRateLimitAndExport(t *testing.T) {
	const execs, limit = 200, 20
	export := filepath.Join(t.TempDir(), "events.log")
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{
		"--process-sensor", fmt.Sprintf("--process-rate-limit=%d", limit),
		"--export-filename", export, "--export-allowlist", `{"namespace":["default"]}`,
	}})
	client := node.AddPod(t, "client")
	writeManifest(t, node, "pods.yaml", podYAML(client, "client"))
	sh, tru := copyBinary(t, "/bin/bash", "sh"), copyBinary(t, "/bin/true", "true")
	out, err := client.NS.Command(sh, "-c", fmt.Sprintf("for i in $(seq %d); do %s; done", execs, tru)).CombinedOutput()
	require.NoError(t, err, "%s", out)

	var evs []*api.ProcessEvent
	var stop *api.ProcessThrottle
	require.Eventually(t, func() bool {
		evs = processEvents(t, node, api.EventFilter{Namespace: "default", Pod: "client"})
		for _, ev := range evs {
			if th := ev.ProcessThrottle; th != nil && th.Type == api.ThrottleStop {
				stop = th
			}
		}
		return stop != nil
	}, 15*time.Second, 200*time.Millisecond, "a THROTTLE_STOP for pod client")

	var execSeen, exits, starts int
	for _, ev := range evs {
		switch {
		case ev.ProcessExec != nil && ev.ProcessExec.Process.Binary == tru:
			execSeen++
		case ev.ProcessExit != nil && ev.ProcessExit.Process.Binary == tru:
			exits++
		case ev.ProcessThrottle != nil && ev.ProcessThrottle.Type == api.ThrottleStart:
			starts++
		}
	}
	assert.Equal(t, execs, exits, "exit events are never rate-limited")
	assert.Less(t, execSeen, execs, "exec events above the limit are dropped")
	assert.Positive(t, starts, "a THROTTLE_START when dropping began")
	assert.Positive(t, stop.Dropped, "the THROTTLE_STOP counts what was dropped")
	assert.Equal(t, "client", stop.Pod)

	// The export holds the pod's events (and nothing from the host), the
	// same ones the agent published; lines reach the file within a second.
	require.Eventually(t, func() bool {
		got := exportedEvents(t, export)
		for _, ev := range got {
			if ev.ProcessThrottle != nil && ev.ProcessThrottle.Type == api.ThrottleStop {
				return true
			}
		}
		return false
	}, 5*time.Second, 100*time.Millisecond, "the THROTTLE_STOP in the export file")
	var exported int
	for _, ev := range exportedEvents(t, export) {
		ns, pod := ev.PodName()
		require.Equal(t, "default", ns, "the allow list lets only namespace default through: %+v", ev)
		if pod == "client" && ev.ProcessExec != nil && ev.ProcessExec.Process.Binary == tru {
			exported++
		}
	}
	assert.Equal(t, execSeen, exported, "the export has every exec event the agent published for the pod")
}
