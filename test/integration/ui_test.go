package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/ui"
	"github.com/sluicenet/sluice/test/harness"
)

// uiVIP is the cluster IP of x/websvc in the service map's demo.
const uiVIP = "10.96.0.30"

// uiDemo is the service map's demo node: x/client (app=client), x/web-1
// and x/web-2 (app=web, behind x/websvc) and y/scanner (app=scanner); a
// policy lets only client into web. The traffic: client → websvc
// (forwarded, through the service), scanner → web-1 (dropped), the node
// → scanner (forwarded: host), and a process run in client's network
// namespace for the process panel.
type uiDemo struct {
	node                         *harness.Node
	client, web1, web2, scanner  *harness.Pod
	probe                        string // the binary run in client's netns
	url                          string // where `sluice ui` serves
	wantNodes                    []string
	wantEdges                    map[[2]string]string // source, target → verdict
	forwardedEdges, droppedEdges int
}

func newUIDemo(t *testing.T) *uiDemo {
	t.Helper()
	d := &uiDemo{node: harness.NewNode(t, harness.NodeOptions{})}
	d.node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--process-sensor"}})
	d.client, d.web1, d.web2 = d.node.AddPodIn(t, "x", "client"), d.node.AddPodIn(t, "x", "web-1"), d.node.AddPodIn(t, "x", "web-2")
	d.scanner = d.node.AddPodIn(t, "y", "scanner")
	var objs strings.Builder
	objs.WriteString("apiVersion: v1\nkind: Namespace\nmetadata: {name: \"x\", labels: {ns: \"x\"}}\n" +
		"---\napiVersion: v1\nkind: Namespace\nmetadata: {name: \"y\", labels: {ns: \"y\"}}\n")
	for _, p := range []struct {
		pod *harness.Pod
		app string
	}{{d.client, "client"}, {d.web1, "web"}, {d.web2, "web"}, {d.scanner, "scanner"}} {
		harness.ServeTCP(t, p.pod.NS, p.pod.Addr(podPort), p.pod.FullName())
		fmt.Fprintf(&objs, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %q, namespace: %q, labels: {app: %q}}\n"+
			"spec: {containers: [{name: app, image: none, ports: [{name: http, containerPort: %d}]}]}\n",
			p.pod.Name, p.pod.Namespace, p.app, podPort)
	}
	fmt.Fprintf(&objs, "---\napiVersion: v1\nkind: Service\nmetadata: {name: websvc, namespace: x}\n"+
		"spec: {clusterIP: %s, selector: {app: web}, ports: [{name: http, port: 80, targetPort: http, protocol: TCP}]}\n", uiVIP)
	objs.WriteString("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-from-client, namespace: x}\n" +
		"spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]}\n")
	writeManifest(t, d.node, "demo.yaml", objs.String())
	waitBackends(t, d.node, uiVIP+":80", 2)
	d.wantNodes = []string{"host", "service:x/websvc", "x/client", "x/web", "y/scanner"}
	d.wantEdges = map[[2]string]string{
		{"x/client", "service:x/websvc"}: "FORWARDED",
		{"service:x/websvc", "x/web"}:    "FORWARDED",
		{"y/scanner", "x/web"}:           "DROPPED",
		{"host", "y/scanner"}:            "FORWARDED",
	}
	d.forwardedEdges, d.droppedEdges = 3, 1
	return d
}

// sendTraffic makes the demo's traffic, retrying until the policy is in
// force (scanner dropped) and every allowed connection answers.
func (d *uiDemo) sendTraffic(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := harness.Ask(d.scanner.NS, d.web1.Addr(podPort), 500*time.Millisecond)
		return err != nil
	}, 20*time.Second, 200*time.Millisecond, "the policy never dropped scanner → web-1")
	// Through the service until both web pods answered, three times at least.
	answered := map[string]bool{}
	for i := 0; i < 3 || len(answered) < 2; i++ {
		require.Less(t, i, 50, "websvc never reached both web pods: %v", answered)
		got, err := harness.Ask(d.client.NS, uiVIP+":80", 2*time.Second)
		require.NoError(t, err, "client → websvc")
		require.Contains(t, []string{d.web1.FullName(), d.web2.FullName()}, got)
		answered[got] = true
	}
	for range 3 {
		requireReply(t, d.node.NS, d.scanner.Addr(podPort), d.scanner.FullName())
	}
	d.probe = copyBinary(t, "/bin/true", "ui-probe")
	require.NoError(t, d.client.NS.Command(d.probe, "service-map").Run())
}

// startUI runs `sluice ui --addr 127.0.0.1:0` against the demo's agent and
// returns its URL; the process is killed by PID when the test ends.
func (d *uiDemo) startUI(t *testing.T) {
	t.Helper()
	cmd := exec.Command(harness.Bin(t, "sluice"), "--socket", d.node.Socket(), "ui", "--addr", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "sluice ui: %s", stderr.String())
	_, url, ok := strings.Cut(strings.TrimSpace(line), " on ")
	require.True(t, ok, "sluice ui said %q", line)
	require.True(t, strings.HasPrefix(url, "http://127.0.0.1:"), url)
	d.url = strings.TrimSuffix(url, "/")
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v), url)
}

// graphEdges returns the graph's edges as source, target → verdict.
func graphEdges(g ui.Graph) map[[2]string]string {
	m := map[[2]string]string{}
	for _, e := range g.Edges {
		m[[2]string{e.Source, e.Target}] = e.Verdict
	}
	return m
}

// requireDemoGraph waits until /api/graph shows the demo's nodes and
// edges with their verdicts, and checks the counts and colours.
func (d *uiDemo) requireDemoGraph(t *testing.T) ui.Graph {
	t.Helper()
	var g ui.GraphResponse
	ok := assert.Eventually(t, func() bool {
		g = ui.GraphResponse{}
		getJSON(t, d.url+"/api/graph", &g)
		edges := graphEdges(g.Graph)
		for k, v := range d.wantEdges {
			if edges[k] != v {
				return false
			}
		}
		return true
	}, 10*time.Second, 200*time.Millisecond)
	require.True(t, ok, "graph %+v lacks edges %v", g, d.wantEdges)
	assert.Empty(t, g.Error)
	var ids []string
	for _, n := range g.Nodes {
		ids = append(ids, n.ID)
		if n.ID == "x/web" {
			assert.Equal(t, []string{"x/web-1", "x/web-2"}, n.Pods, "both web pods in the workload")
		}
	}
	assert.Subset(t, ids, d.wantNodes)
	assert.Subset(t, g.Namespaces, []string{"x", "y"})
	for _, e := range g.Edges {
		assert.Equal(t, ui.VerdictColor(e.Verdict), e.Color, "%+v", e)
		assert.Equal(t, e.Flows, e.Forwarded+e.Dropped+e.Audit, "%+v", e)
		if k := [2]string{e.Source, e.Target}; d.wantEdges[k] == "" {
			assert.Equal(t, "FORWARDED", e.Verdict, "only scanner's edge is dropped: %+v", e)
		}
		switch [2]string{e.Source, e.Target} {
		case [2]string{"x/client", "service:x/websvc"}:
			assert.GreaterOrEqual(t, e.Forwarded, 3, "three connections: %+v", e)
			assert.Contains(t, e.Ports, fmt.Sprintf("%d/TCP", podPort))
		case [2]string{"y/scanner", "x/web"}:
			assert.Positive(t, e.Dropped, "%+v", e)
		}
	}
	return g.Graph
}

func TestPrivilegedServiceMap(t *testing.T) {
	harness.RequirePrivileged(t)
	d := newUIDemo(t)
	d.sendTraffic(t)
	d.startUI(t)
	d.requireDemoGraph(t)

	t.Run("graph filters", func(t *testing.T) {
		var g ui.GraphResponse
		getJSON(t, d.url+"/api/graph?verdict=DROPPED", &g)
		assert.Equal(t, map[[2]string]string{{"y/scanner", "x/web"}: "DROPPED"}, graphEdges(g.Graph))
		g = ui.GraphResponse{}
		getJSON(t, d.url+"/api/graph?namespace=y", &g)
		for _, e := range g.Edges {
			assert.True(t, e.Source == "y/scanner" || e.Target == "y/scanner", "%+v", e)
		}
		assert.NotEmpty(t, g.Edges)
	})
	t.Run("flows", func(t *testing.T) {
		var rows []ui.FlowRow
		getJSON(t, d.url+"/api/flows?verdict=DROPPED&from-pod=y/scanner", &rows)
		require.NotEmpty(t, rows)
		for _, r := range rows {
			assert.Equal(t, "DROPPED", r.Verdict)
			assert.Equal(t, "y/scanner", r.SrcPod)
			assert.Equal(t, "default deny", r.Decision)
		}
		rows = nil
		getJSON(t, d.url+"/api/flows?last=2", &rows)
		assert.Len(t, rows, 2)
		resp, err := http.Get(d.url + "/api/flows?port=http")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("processes", func(t *testing.T) {
		requireProbeEvent(t, d)
	})
	t.Run("browser", func(t *testing.T) {
		d.checkInBrowser(t)
	})
}

// requireProbeEvent waits until /api/processes shows client's probe run.
func requireProbeEvent(t *testing.T, d *uiDemo) {
	t.Helper()
	var resp ui.ProcessResponse
	require.Eventually(t, func() bool {
		resp = ui.ProcessResponse{}
		getJSON(t, d.url+"/api/processes?pod=x/client", &resp)
		for _, ev := range resp.Events {
			if strings.Contains(ev.Line, "process x/client "+d.probe+" service-map") {
				return true
			}
		}
		return false
	}, 10*time.Second, 200*time.Millisecond, "no exec of %s in %+v", d.probe, resp)
	assert.True(t, resp.Sensor)
}
