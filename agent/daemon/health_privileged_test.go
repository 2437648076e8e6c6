package daemon_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/daemon"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/test/harness"
)

// probe sends GET path to addr from inside ns (on one locked thread, so the
// dial happens in the netns) and returns the status code and body.
func probe(t *testing.T, ns *harness.NetNS, addr, path string) (int, string, error) {
	t.Helper()
	var (
		code int
		body string
		err  error
	)
	ns.Do(t, func() {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, 2*time.Second); err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n", path)
		var resp *http.Response
		if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, strings.TrimSpace(string(b))
	})
	return code, body, err
}

// The agent's probes: /healthz answers while the API loop runs, /readyz
// turns ready once the manifests snapshot is programmed, turns unready when
// a pod program is unpinned, and both stop with the agent.
func TestPrivilegedDaemonHealthProbes(t *testing.T) {
	harness.RequirePrivileged(t)
	ns := harness.NewNetNS(t, "sluice-health-")
	bpffs := harness.BPFFS(t)
	manifests := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(manifests, "svc.yaml"), []byte(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.50
  ports: [{port: 80, protocol: TCP}]
`), 0o600))
	const addr = "127.0.0.1:9879"
	cfg := daemon.Config{
		BPFRoot:        filepath.Join(bpffs, "sluice"),
		RunDir:         filepath.Join(t.TempDir(), "run"),
		ResyncInterval: time.Hour,
		ManifestsDir:   manifests,
		HealthAddr:     addr,
		NodeName:       "node-1",
		Log:            testLogger(t),
	}
	a := startAgent(t, ns, cfg)

	require.Eventually(t, func() bool {
		code, _, err := probe(t, ns, addr, "/readyz")
		return err == nil && code == http.StatusOK
	}, 15*time.Second, 100*time.Millisecond, "agent never ready")
	code, body, err := probe(t, ns, addr, "/healthz")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)
	assert.NotEmpty(t, a.d.Services().Services(), "ready means the service is programmed")

	prog := pin.ProgPath(cfg.BPFRoot, pin.PodHooks[0].Prog)
	saved := prog + "-saved"
	require.NoError(t, os.Rename(prog, saved))
	t.Cleanup(func() { os.Rename(saved, prog) })
	code, body, err = probe(t, ns, addr, "/readyz")
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "is not pinned")
	code, _, err = probe(t, ns, addr, "/healthz")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "liveness does not depend on readiness")
	require.NoError(t, os.Rename(saved, prog))
	code, _, err = probe(t, ns, addr, "/readyz")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)

	a.stop()
	_, _, err = probe(t, ns, addr, "/healthz")
	assert.Error(t, err, "probes stop with the agent")
}
