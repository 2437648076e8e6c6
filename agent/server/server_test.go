package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/agent/endpointmgr/endpointtest"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/agent/state"
	"github.com/sluicenet/sluice/datapath/metricsmap"
)

type fixture struct {
	dp     *endpointtest.Datapath
	client *api.Client
	socket string
	health error
	h      http.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := state.New(filepath.Join(dir, "endpoints"))
	require.NoError(t, err)
	log, _ := logtest.NewNullLogger()
	f := &fixture{dp: endpointtest.New(), socket: filepath.Join(dir, "run", "agent.sock")}
	m := endpointmgr.New(f.dp, f.dp, store, log)
	f.h = server.Handler(server.Config{Endpoints: m, BPFRoot: "/bpf/root", Health: func() error { return f.health }, Log: log})
	ln, err := server.Listen(f.socket)
	require.NoError(t, err)
	srv := &http.Server{Handler: f.h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.client = api.NewClient(f.socket)
	return f
}

func sample(cid, ip string) api.Endpoint {
	return api.Endpoint{
		ContainerID: cid, IfName: "eth0", IPv4: ip, MAC: "02:00:00:00:00:05",
		PodNamespace: "default", PodName: "web",
		HostIfName: "lxc" + cid, HostIfIndex: 9, HostMAC: "02:00:00:00:01:07",
	}
}

func TestSocketPermissions(t *testing.T) {
	f := newFixture(t)
	fi, err := os.Stat(f.socket)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(filepath.Dir(f.socket))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())

	_, err = server.Listen(f.socket)
	require.ErrorContains(t, err, "another agent is serving it")
}

func TestListenReplacesStaleSocket(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.sock")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	ln, err := server.Listen(p)
	require.NoError(t, err)
	ln.Close()
}

func TestEndpointLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	h, err := f.client.Healthz(ctx)
	require.NoError(t, err)
	assert.Equal(t, api.Health{Status: "ok", BPFRoot: "/bpf/root"}, h)

	out, err := f.client.PutEndpoint(ctx, sample("c/1", "10.0.0.1"))
	require.NoError(t, err)
	assert.Equal(t, uint16(1), out.ID)
	assert.Equal(t, "c/1", out.ContainerID, "IDs with slashes survive path escaping")
	assert.False(t, out.Created.IsZero())
	_, ok := f.dp.Entry("10.0.0.1")
	assert.True(t, ok, "answered only once the BPF entry is in place")

	f.dp.AddCounter(metricsmap.Counter{Ifindex: 9, Direction: metricsmap.DirEgress, Reason: metricsmap.ReasonFwdStack, Packets: 4, Bytes: 400})
	got, err := f.client.GetEndpoint(ctx, "c/1", "eth0")
	require.NoError(t, err)
	assert.Equal(t, []api.Counter{{Direction: "egress", Reason: "forward-stack", Packets: 4, Bytes: 400}}, got.Counters)

	list, err := f.client.ListEndpoints(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Len(t, list[0].Counters, 1)

	h, err = f.client.Healthz(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, h.Endpoints)

	require.NoError(t, f.client.DeleteEndpoint(ctx, "c/1", "eth0"))
	assert.Equal(t, 0, f.dp.Len())
	require.ErrorIs(t, f.client.DeleteEndpoint(ctx, "c/1", "eth0"), api.ErrNotFound)
	_, err = f.client.GetEndpoint(ctx, "c/1", "eth0")
	require.ErrorIs(t, err, api.ErrNotFound)
}

func TestPutErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.client.PutEndpoint(ctx, sample("a", "10.0.0.1"))
	require.NoError(t, err)

	tests := []struct {
		name   string
		setup  func()
		ep     api.Endpoint
		status int
		msg    string
	}{
		{"bad ipv4", nil, sample("b", "10.0.0"), http.StatusBadRequest, "ipv4"},
		{"bad mac", nil, func() api.Endpoint { e := sample("b", "10.0.0.2"); e.MAC = "x"; return e }(), http.StatusBadRequest, "mac"},
		{"missing field", nil, func() api.Endpoint { e := sample("b", "10.0.0.2"); e.HostMAC = ""; return e }(), http.StatusBadRequest, "hostMAC is required"},
		{"ip in use", nil, sample("b", "10.0.0.1"), http.StatusConflict, "already used by endpoint a/eth0"},
		{"map full", func() { f.dp.MaxEntries = 1 }, sample("b", "10.0.0.2"), http.StatusInternalServerError, "map is full"},
		{"map error", func() { f.dp.MaxEntries = 0; f.dp.FailUpsert = errors.New("boom") }, sample("b", "10.0.0.2"), http.StatusInternalServerError, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			status, body := do(t, f.h, http.MethodPut, "/v1/endpoints/"+tt.ep.ContainerID+"/eth0", tt.ep)
			assert.Equal(t, tt.status, status)
			assert.Contains(t, body, tt.msg)
			_, err := f.client.PutEndpoint(ctx, tt.ep)
			require.ErrorContains(t, err, tt.msg, "the client surfaces the message")
		})
	}
}

func TestPutBodyMustMatchPath(t *testing.T) {
	f := newFixture(t)
	ep := sample("a", "10.0.0.1")
	status, body := do(t, f.h, http.MethodPut, "/v1/endpoints/other/eth0", ep)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, "does not match")

	ep.ContainerID, ep.IfName = "", ""
	status, _ = do(t, f.h, http.MethodPut, "/v1/endpoints/fromPath/net1", ep)
	assert.Equal(t, http.StatusOK, status, "name taken from the path")

	status, body = doRaw(t, f.h, http.MethodPut, "/v1/endpoints/a/eth0", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, "empty")
}

func TestHealthzUnhealthy(t *testing.T) {
	f := newFixture(t)
	f.health = errors.New("program from_container is not pinned")
	_, err := f.client.Healthz(context.Background())
	require.ErrorContains(t, err, "not pinned")
}

func TestMethodNotAllowed(t *testing.T) {
	f := newFixture(t)
	status, _ := doRaw(t, f.h, http.MethodPost, "/v1/endpoints", "{}")
	assert.Equal(t, http.StatusMethodNotAllowed, status)
}

func do(t *testing.T, h http.Handler, method, path string, v any) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, jsonEncode(&buf, v))
	return doRaw(t, h, method, path, buf.String())
}

func doRaw(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewBufferString(body)))
	return rec.Code, rec.Body.String()
}
