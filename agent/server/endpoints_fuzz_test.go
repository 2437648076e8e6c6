package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/agent/endpointmgr/endpointtest"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/agent/state"
	"github.com/sluicenet/sluice/datapath/endpointmap"
)

// FuzzPutEndpoint sends PUT /v1/endpoints/{containerID}/{ifName} with a
// fuzzed path (escaped as api.Client does) and body to the real endpoint
// manager, next to one endpoint already stored. Invariants: the answer is
// 200, 400 or 409 (or 404/405 from the mux for a path it does not route,
// 301/307 for one it cleans, as a name "." gives),
// never a 500 for bad input, and always a JSON body; a refused request
// changes neither the endpoints, the datapath entries nor the state files;
// an accepted endpoint is what GET answers, survives an agent restart
// (state file → Restore) unchanged, is accepted again unchanged when sent
// back, and leaves one datapath entry per endpoint.
func FuzzPutEndpoint(f *testing.F) {
	body := func(ep api.Endpoint) []byte {
		b, err := json.Marshal(ep)
		require.NoError(f, err)
		return b
	}
	f.Add("c1", "eth0", body(sample("c1", "10.244.1.5")))
	f.Add("pre", "eth0", body(sample("pre", "10.244.1.9")))
	f.Add("c2", "eth0", body(sample("c2", "10.244.1.1"))) // conflict: the stored endpoint's address
	f.Add("c3", "net1", []byte(`{"ipv4":"::ffff:10.1.2.3","mac":"02-00-00-00-00-AA","hostIfName":"lxc3","hostIfIndex":2147483647,"hostMAC":"02:00:00:00:01:07","id":7,"counters":[{"packets":1}]}`))
	f.Add("c4", "eth0", []byte(`{"containerID":"other","ipv4":"10.1.2.3"}`))
	f.Add("a b%2F", "eth0", []byte(`{"ipv4":"10.1.2.3","mac":"02:00:00:00:00:05","hostIfName":"x","hostIfIndex":1,"hostMAC":"02:00:00:00:00:06"} trailing`))
	f.Fuzz(func(t *testing.T, containerID, ifName string, reqBody []byte) {
		dir := memTempDir(t)
		store, err := state.New(filepath.Join(dir, "endpoints"))
		require.NoError(t, err)
		log, _ := logtest.NewNullLogger()
		dp := endpointtest.New()
		m := endpointmgr.New(dp, dp, store, log)
		_, err = m.Put(sample("pre", "10.244.1.1"))
		require.NoError(t, err)
		h := server.Handler(server.Config{Endpoints: m, Log: log})
		path := "/v1/endpoints/" + url.PathEscape(containerID) + "/" + url.PathEscape(ifName)

		before := snapshot(t, m, dp, store)
		code, out := serve(t, h, http.MethodPut, path, reqBody)
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest, http.StatusConflict, http.StatusNotFound, http.StatusMethodNotAllowed,
			http.StatusTemporaryRedirect, http.StatusMovedPermanently},
			code, "%s", out)
		if code != http.StatusOK {
			require.Equal(t, before, snapshot(t, m, dp, store), "a refused request changes nothing")
			if code == http.StatusBadRequest || code == http.StatusConflict {
				var e api.Error
				require.NoError(t, json.Unmarshal(out, &e), "%s", out)
				require.NotEmpty(t, e.Error)
			}
			return
		}
		var got api.Endpoint
		require.NoError(t, json.Unmarshal(out, &got), "%s", out)
		require.Equal(t, containerID, got.ContainerID)
		require.Equal(t, ifName, got.IfName)
		stored, err := m.Get(containerID, ifName)
		require.NoError(t, err)
		require.Equal(t, got, stored, "GET answers what PUT stored")
		require.Equal(t, m.Len(), dp.Len(), "one datapath entry per endpoint")

		restarted := endpointmgr.New(dp, dp, store, log)
		require.NoError(t, restarted.Restore(func(string, int) (bool, error) { return true, nil }))
		again, err := restarted.Get(containerID, ifName)
		require.NoError(t, err, "the endpoint survives a restart")
		require.Equal(t, got, again, "the state file restores the endpoint unchanged")

		code, out2 := serve(t, h, http.MethodPut, path, out)
		require.Equal(t, http.StatusOK, code, "the answer sent back is accepted: %s", out2)
		require.JSONEq(t, string(out), string(out2), "and changes nothing")
	})
}

// memTempDir is a temporary directory on tmpfs where there is one: the
// manager fsyncs every state file, which dominates a fuzz iteration on disk.
func memTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "sluice-fuzz-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// snapshot is what a request may change: the endpoints, the datapath
// entries and the state files.
func snapshot(t *testing.T, m *endpointmgr.Manager, dp *endpointtest.Datapath, store *state.Store) [3]string {
	eps, err := m.List()
	require.NoError(t, err)
	entries, err := dp.List()
	require.NoError(t, err)
	slices.SortFunc(entries, func(a, b endpointmap.Endpoint) int { return a.IP.Compare(b.IP) })
	files, err := filepath.Glob(filepath.Join(store.Dir(), "*"))
	require.NoError(t, err)
	var s [3]string
	for i, v := range []any{eps, entries, files} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		s[i] = string(b)
	}
	return s
}

func serve(t *testing.T, h http.Handler, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, "http://agent"+path, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}
