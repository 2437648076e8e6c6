package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/harness"
)

// hcAnswer is one answer of a health-check port.
type hcAnswer struct {
	status int
	header http.Header
	body   string
}

// hcGet sends GET path to addr from ns (a fresh connection each time) and
// returns the answer.
func hcGet(ns *harness.NetNS, addr, path string) (hcAnswer, error) {
	c, err := harness.Dial(ns, "tcp4", "", addr, time.Second)
	if err != nil {
		return hcAnswer{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr); err != nil {
		return hcAnswer{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return hcAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return hcAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

// hcBody is kube-proxy's health-check JSON.
type hcBody struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

// waitHC waits until addr answers from ns with status and localEndpoints n.
func waitHC(t *testing.T, ns *harness.NetNS, addr string, status, n int) hcAnswer {
	t.Helper()
	var last hcAnswer
	var lastErr error
	ok := assert.Eventually(t, func() bool {
		last, lastErr = hcGet(ns, addr, "/healthz")
		if lastErr != nil || last.status != status {
			return false
		}
		var b hcBody
		return json.Unmarshal([]byte(last.body), &b) == nil && b.LocalEndpoints == n
	}, 15*time.Second, 100*time.Millisecond, "%s: want %d with %d local endpoints", addr, status, n)
	if !ok {
		t.Fatalf("last answer %+v, error %v", last, lastErr)
	}
	return last
}

// waitRefused waits until nothing listens on addr (the connection is
// refused by the node's stack: the host program let the SYN through).
func waitRefused(t *testing.T, ns *harness.NetNS, addr string) {
	t.Helper()
	var lastErr error
	require.Eventually(t, func() bool {
		_, lastErr = hcGet(ns, addr, "/healthz")
		return lastErr != nil && !harness.IsTimeout(lastErr) && strings.Contains(lastErr.Error(), syscall.ECONNREFUSED.Error())
	}, 15*time.Second, 100*time.Millisecond, "%s still answers (or times out): %v", addr, lastErr)
}

// lbLocalYAML is a LoadBalancer Service with externalTrafficPolicy Local,
// node port nodePort and health-check node port hcPort; selector app=web
// when selector is set.
func lbLocalYAML(name, clusterIP string, nodePort, hcPort int, selector bool) string {
	sel := ""
	if selector {
		sel = "  selector:\n    app: web\n"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
spec:
  type: LoadBalancer
  clusterIP: %s
  externalTrafficPolicy: Local
  healthCheckNodePort: %d
%s  ports:
  - name: http
    port: %d
    targetPort: %d
    nodePort: %d
    protocol: TCP
---
`, name, clusterIP, hcPort, sel, svcPort, podPort, nodePort)
}

// ingressDrops sums the drop counters of ext0's ingress.
func (e *npEnv) ingressDrops(t *testing.T) uint64 {
	t.Helper()
	cs, err := metricsmap.PinnedCounters(e.node.BPFRoot)
	require.NoError(t, err)
	var n uint64
	for _, c := range cs {
		if c.Ifindex == e.ext0Index && c.Direction == metricsmap.DirIngress && c.Reason.IsDrop() {
			n += c.Packets
		}
	}
	return n
}

// The health-check node port of a LoadBalancer Service with
// externalTrafficPolicy Local, asked from a client outside the node through
// ext0, where the host programs are attached: kube-proxy's answers as the
// node's endpoints change, the listener following the port and going with
// the Service, a port that cannot be bound reported and not fatal, and the
// node's proxy health on 10256. Once with the tc program alone on ext0,
// once with the XDP program in front of it (--lb-acceleration native).
func TestPrivilegedHealthCheckNodePort(t *testing.T) {
	t.Run("tc", func(t *testing.T) { testHealthCheckNodePort(t, newNPEnv(t)) })
	t.Run("xdp", func(t *testing.T) {
		e := newNPEnvArgs(t, "--lb-acceleration", "native")
		e.xdpPeers(t)
		e.requireXDPStatus(t, "xdp native")
		testHealthCheckNodePort(t, e)
	})
}

func testHealthCheckNodePort(t *testing.T, e *npEnv) {
	var pods strings.Builder
	for _, p := range e.pods {
		pods.WriteString(podYAML(p, "web"))
	}
	writeManifest(t, e.node, "pods.yaml", pods.String())
	const hcPort, hcPort2 = 31990, 31991 // in the NodePort range, no NodePort frontend
	hcAddr := fmt.Sprintf("%s:%d", npNodeIP, hcPort)

	t.Run("standalone selector Service counts the ready pods here", func(t *testing.T) {
		writeManifest(t, e.node, "lb.yaml", lbLocalYAML("lb", "10.96.0.40", 30090, hcPort, true))
		a := waitHC(t, e.ext, hcAddr, 200, 2)
		assert.Equal(t, "application/json", a.header.Get("Content-Type"))
		assert.Equal(t, "nosniff", a.header.Get("X-Content-Type-Options"))
		assert.Equal(t, "2", a.header.Get("X-Load-Balancing-Endpoint-Weight"))
		assert.Equal(t, "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"lb\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}", a.body)
		b, err := hcGet(e.ext, hcAddr, "/any/path")
		require.NoError(t, err)
		assert.Equal(t, 200, b.status, "any path, as kube-proxy")
	})

	t.Run("the host program passes the port, NodePort traffic still translated", func(t *testing.T) {
		translated := e.hostCounter(t, e.ext0Index, metricsmap.ReasonLBTranslated)
		drops := e.ingressDrops(t)
		for range 5 {
			a, err := hcGet(e.ext, hcAddr, "/healthz")
			require.NoError(t, err)
			assert.Equal(t, 200, a.status)
		}
		assert.Equal(t, drops, e.ingressDrops(t), "no drop on ext0")
		assert.Equal(t, translated, e.hostCounter(t, e.ext0Index, metricsmap.ReasonLBTranslated), "health checks not load-balanced")
		// The program is attached on this path: the Service's NodePort
		// goes through it.
		names, _ := askManyPeer(t, e.ext, npNodeIP+":30090", 4)
		assert.NotEmpty(t, names)
		assert.Greater(t, e.hostCounter(t, e.ext0Index, metricsmap.ReasonLBTranslated), translated, "NodePort translated on ext0")
	})

	t.Run("one local ready endpoint in a slice", func(t *testing.T) {
		writeManifest(t, e.node, "lb.yaml", lbLocalYAML("lb", "10.96.0.40", 30090, hcPort, false)+
			sliceYAML("lb",
				[5]string{e.pods[0].IP.String(), e.node.Name, "true", "true", "false"},
				[5]string{npRemoteIP, "node-2", "true", "true", "false"}))
		waitHC(t, e.ext, hcAddr, 200, 1)
	})

	t.Run("only a terminating local endpoint: 503", func(t *testing.T) {
		writeManifest(t, e.node, "lb.yaml", lbLocalYAML("lb", "10.96.0.40", 30090, hcPort, false)+
			sliceYAML("lb",
				[5]string{e.pods[0].IP.String(), e.node.Name, "false", "true", "true"},
				[5]string{npRemoteIP, "node-2", "true", "true", "false"}))
		a := waitHC(t, e.ext, hcAddr, 503, 0)
		assert.Equal(t, "0", a.header.Get("X-Load-Balancing-Endpoint-Weight"))
		assert.Contains(t, a.body, `"serviceProxyHealthy": true`)
	})

	t.Run("no local endpoint: 503", func(t *testing.T) {
		writeManifest(t, e.node, "lb.yaml", lbLocalYAML("lb", "10.96.0.40", 30090, hcPort, false)+
			sliceYAML("lb", [5]string{e.pods[1].IP.String(), e.node.Name, "true", "true", "false"}))
		waitHC(t, e.ext, hcAddr, 200, 1)
		writeManifest(t, e.node, "lb.yaml", lbLocalYAML("lb", "10.96.0.40", 30090, hcPort, false)+
			sliceYAML("lb", [5]string{npRemoteIP, "node-2", "true", "true", "false"}))
		waitHC(t, e.ext, hcAddr, 503, 0)
	})

	t.Run("service list and status show the port", func(t *testing.T) {
		svcs, err := e.node.Client().ListServices(t.Context())
		require.NoError(t, err)
		var found *api.ServiceHealthCheck
		for _, s := range svcs {
			if strings.HasPrefix(s.Name, "default/lb:") && s.HealthCheck != nil {
				found = s.HealthCheck
			}
		}
		require.NotNil(t, found, "%+v", svcs)
		assert.Equal(t, api.ServiceHealthCheck{Port: hcPort, LocalEndpoints: 0, Listening: true}, *found)
		st, err := e.node.Client().Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, st.Services.HealthCheckPorts)
	})

	t.Run("a port change moves the listener", func(t *testing.T) {
		writeManifest(t, e.node, "lb.yaml", lbLocalYAML("lb", "10.96.0.40", 30090, hcPort2, false)+
			sliceYAML("lb", [5]string{e.pods[1].IP.String(), e.node.Name, "true", "true", "false"}))
		waitHC(t, e.ext, fmt.Sprintf("%s:%d", npNodeIP, hcPort2), 200, 1)
		waitRefused(t, e.ext, hcAddr)
	})

	t.Run("the listener goes with the Service", func(t *testing.T) {
		require.NoError(t, os.Remove(filepath.Join(e.node.ManifestsDir, "lb.yaml")))
		waitRefused(t, e.ext, fmt.Sprintf("%s:%d", npNodeIP, hcPort2))
	})

	t.Run("a port that cannot be bound is reported, then retried", func(t *testing.T) {
		const taken = 31995
		var blocker net.Listener
		var err error
		e.node.NS.Do(t, func() { blocker, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", taken)) })
		require.NoError(t, err)
		t.Cleanup(func() { blocker.Close() })
		writeManifest(t, e.node, "taken.yaml", lbLocalYAML("taken", "10.96.0.41", 30091, taken, true))
		require.Eventually(t, func() bool {
			st, err := e.node.Client().Status(t.Context())
			return err == nil && len(st.Services.HealthCheckFailed) == 1 &&
				strings.Contains(st.Services.HealthCheckFailed[0], "address already in use")
		}, 15*time.Second, 100*time.Millisecond, "reported in status")
		svcs, err := e.node.Client().ListServices(t.Context())
		require.NoError(t, err)
		for _, s := range svcs {
			if strings.HasPrefix(s.Name, "default/taken:") {
				require.NotNil(t, s.HealthCheck)
				assert.False(t, s.HealthCheck.Listening)
				assert.Contains(t, s.HealthCheck.Error, "address already in use")
			}
		}
		st, err := e.node.Client().Status(t.Context())
		require.NoError(t, err)
		assert.True(t, st.Healthy, "a port conflict is a warning, not a problem: %v", st.Problems)
		blocker.Close()
		waitHC(t, e.ext, fmt.Sprintf("%s:%d", npNodeIP, taken), 200, 2)
	})

	t.Run("the node's proxy health on 10256", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/livez"} {
			a, err := hcGet(e.ext, npNodeIP+":10256", path)
			require.NoError(t, err, path)
			assert.Equal(t, 200, a.status, "%s: %s", path, a.body)
			assert.Equal(t, "application/json", a.header.Get("Content-Type"))
			var b map[string]any
			require.NoError(t, json.Unmarshal([]byte(a.body), &b), a.body)
			assert.Equal(t, true, b["healthy"], path)
		}
	})
}
