package healthcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/lb/translate"
)

// kubeProxyBody is the body kube-proxy 1.33's hcHandler writes for
// default/web with 2 local endpoints (its dedented template, trimmed of
// newlines), typed out here independently of Answer.Body.
const kubeProxyBody = "{\n" +
	"\t\"service\": {\n" +
	"\t\t\"namespace\": \"default\",\n" +
	"\t\t\"name\": \"web\"\n" +
	"\t},\n" +
	"\t\"localEndpoints\": 2,\n" +
	"\t\"serviceProxyHealthy\": true\n" +
	"}"

// TestAnswer: status, headers and body as kube-proxy's health-check node
// port answers them.
func TestAnswer(t *testing.T) {
	cases := []struct {
		name       string
		a          Answer
		wantStatus int
	}{
		{"local endpoints", Answer{Namespace: "default", Name: "web", LocalEndpoints: 2, ProxyHealthy: true}, 200},
		{"no local endpoint", Answer{Namespace: "default", Name: "web", LocalEndpoints: 0, ProxyHealthy: true}, 503},
		{"proxy unhealthy", Answer{Namespace: "default", Name: "web", LocalEndpoints: 2, ProxyHealthy: false}, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, target := range []string{"/healthz", "/", "/anything?x=1"} {
				rec := httptest.NewRecorder()
				serviceHandler{answer: func() (Answer, bool) { return tc.a, true }}.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
				assert.Equal(t, tc.wantStatus, rec.Code, target)
				assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
				assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
				assert.Equal(t, strconv.Itoa(tc.a.LocalEndpoints), rec.Header().Get("X-Load-Balancing-Endpoint-Weight"))
				var body struct {
					Service struct {
						Namespace string `json:"namespace"`
						Name      string `json:"name"`
					} `json:"service"`
					LocalEndpoints      int  `json:"localEndpoints"`
					ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
				}
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
				assert.Equal(t, "default", body.Service.Namespace)
				assert.Equal(t, "web", body.Service.Name)
				assert.Equal(t, tc.a.LocalEndpoints, body.LocalEndpoints)
				assert.Equal(t, tc.a.ProxyHealthy, body.ServiceProxyHealthy)
			}
		})
	}
	rec := httptest.NewRecorder()
	Answer{Namespace: "default", Name: "web", LocalEndpoints: 2, ProxyHealthy: true}.Write(rec)
	assert.Equal(t, kubeProxyBody, rec.Body.String(), "byte for byte kube-proxy's body")

	rec = httptest.NewRecorder()
	serviceHandler{answer: func() (Answer, bool) { return Answer{}, false }}.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, 503, rec.Code, "a Service being closed")
}

// value reads a counter's or gauge's value.
func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// freePort returns a TCP port on 127.0.0.1 nothing listens on now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func loopbackListen(port uint16) (net.Listener, error) {
	return net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(int(port)))
}

// get asks 127.0.0.1:port; code 0 means the connection failed.
func get(t *testing.T, port uint16) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(int(port)) + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func hc(name string, port uint16, n int) translate.HealthCheck {
	return translate.HealthCheck{Namespace: "default", Name: name, Port: port, LocalEndpoints: n}
}

// TestManagerListeners: ports open with Set and Sync, counts change at once,
// a moved port moves, a removed one closes, and a port that cannot be bound
// is an error (counted, reported, retried) and not fatal.
func TestManagerListeners(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	var failed []string
	m := New(Config{Listen: loopbackListen, ProxyHealthy: healthy.Load, ListenFailed: func(n types.NamespacedName, port uint16, err error) {
		failed = append(failed, fmt.Sprintf("%s %d", n, port))
	}}, logrus.New())
	t.Cleanup(m.closeAll)
	p1, p2 := freePort(t), freePort(t)

	m.Set([]translate.HealthCheck{hc("web", p1, 1)})
	require.NoError(t, m.Sync())
	code, body := get(t, p1)
	assert.Equal(t, 200, code, body)
	assert.Contains(t, body, `"localEndpoints": 1`)

	m.Set([]translate.HealthCheck{hc("web", p1, 0)})
	code, _ = get(t, p1)
	assert.Equal(t, 503, code, "count 0 answered without a sync")

	m.Set([]translate.HealthCheck{hc("web", p1, 3)})
	healthy.Store(false)
	code, body = get(t, p1)
	assert.Equal(t, 503, code, "proxy unhealthy")
	assert.Contains(t, body, `"serviceProxyHealthy": false`)
	healthy.Store(true)

	m.Set([]translate.HealthCheck{hc("web", p2, 3)})
	require.NoError(t, m.Sync())
	code, _ = get(t, p1)
	assert.Equal(t, 0, code, "old port closed")
	code, _ = get(t, p2)
	assert.Equal(t, 200, code, "new port open")

	// A port taken by someone else.
	blocker, err := loopbackListen(p1)
	require.NoError(t, err)
	m.Set([]translate.HealthCheck{hc("web", p2, 3), hc("db", p1, 1)})
	require.Error(t, m.Sync())
	assert.Equal(t, 1.0, value(t, m.listenErrors))
	assert.Equal(t, 1.0, value(t, m.ports.WithLabelValues("failed")))
	st := m.Status()
	require.Len(t, st, 2)
	assert.Equal(t, "db", st[0].Name)
	assert.False(t, st[0].Listening)
	assert.Contains(t, st[0].Error, "address already in use")
	assert.True(t, st[1].Listening, "the other Service's port unaffected")
	code, _ = get(t, p2)
	assert.Equal(t, 200, code)
	require.Error(t, m.Sync(), "still taken")
	assert.Equal(t, []string{fmt.Sprintf("default/db %d", p1)}, failed, "told once, not on every retry")

	blocker.Close()
	require.NoError(t, m.Sync(), "retried once free")
	code, body = get(t, p1)
	assert.Equal(t, 200, code, body)
	assert.Contains(t, body, `"name": "db"`)
	assert.Equal(t, 2.0, value(t, m.ports.WithLabelValues("listening")))

	m.Set(nil)
	require.NoError(t, m.Sync())
	for _, p := range []uint16{p1, p2} {
		code, _ = get(t, p)
		assert.Equal(t, 0, code, "closed after the Services went")
	}
	assert.Empty(t, m.Status())
}

// TestNodeHandler: kube-proxy's /healthz and /livez on the node port.
func TestNodeHandler(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	updated := now.Add(-time.Minute)
	cases := []struct {
		name                 string
		st                   ProxyState
		healthz, livez       int
		wantNodeEligible     bool
		wantLastUpdatedIsNow bool
	}{
		{"healthy", ProxyState{LastUpdated: updated, Healthy: true, NodeEligible: true}, 200, 200, true, true},
		{"proxy stale", ProxyState{LastUpdated: updated, Healthy: false, NodeEligible: true}, 503, 503, true, false},
		{"node being deleted", ProxyState{LastUpdated: updated, Healthy: true, NodeEligible: false}, 503, 200, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NodeHandler(func() ProxyState { return tc.st }, func() time.Time { return now })
			for path, want := range map[string]int{"/healthz": tc.healthz, "/livez": tc.livez} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				assert.Equal(t, want, rec.Code, path)
				assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
				assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
				var body map[string]any
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
				assert.Equal(t, now.Format(time.RFC3339Nano), body["currentTime"])
				assert.Equal(t, tc.st.Healthy, body["healthy"])
				if path == "/healthz" {
					assert.Equal(t, tc.wantNodeEligible, body["nodeEligible"])
				} else {
					assert.NotContains(t, body, "nodeEligible")
				}
				if want == 200 {
					assert.Equal(t, now.Format(time.RFC3339Nano), body["lastUpdated"], "healthy: lastUpdated is now (kube-proxy)")
				} else {
					assert.Equal(t, updated.Format(time.RFC3339Nano), body["lastUpdated"])
				}
			}
		})
	}
}
