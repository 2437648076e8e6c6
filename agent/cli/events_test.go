package cli

import (
	"bytes"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/events"
	"github.com/sluicenet/sluice/agent/server"
)

func curl() *api.Process {
	return &api.Process{ExecID: "Y3VybA==", ParentExecID: "c2g=", PID: 42, Binary: "/usr/bin/curl", Arguments: "http://b",
		Pod: &api.Pod{Namespace: "default", Name: "a"}}
}

func TestEventLine(t *testing.T) {
	host := &api.Process{PID: 1, Binary: "/bin/true"}
	connect := func(c api.ProcessConnect) *api.ProcessEvent {
		c.Process, c.Protocol, c.Source = curl(), "TCP", "10.244.1.2:40312"
		return &api.ProcessEvent{ProcessConnect: &c}
	}
	tests := []struct {
		name string
		ev   *api.ProcessEvent
		want string
	}{
		{"exec", &api.ProcessEvent{ProcessExec: &api.ProcessExec{Process: curl()}},
			"🚀 process default/a /usr/bin/curl http://b"},
		{"exec on the host without arguments", &api.ProcessEvent{ProcessExec: &api.ProcessExec{Process: host}},
			"🚀 process host /bin/true"},
		{"exit", &api.ProcessEvent{ProcessExit: &api.ProcessExit{Process: curl()}},
			"💥 exit default/a /usr/bin/curl http://b 0"},
		{"exit status", &api.ProcessEvent{ProcessExit: &api.ProcessExit{Process: host, Status: 7}},
			"💥 exit host /bin/true 7"},
		{"exit by a signal", &api.ProcessEvent{ProcessExit: &api.ProcessExit{Process: curl(), Signal: "SIGKILL"}},
			"💥 exit default/a /usr/bin/curl http://b SIGKILL"},
		{"connect through a service", connect(api.ProcessConnect{Destination: "10.244.1.3:8080", DestinationPod: "default/b",
			Service: &api.ServiceRef{Namespace: "default", Name: "b", Address: "10.96.0.10:80"}}),
			"🔌 connect default/a /usr/bin/curl 10.244.1.2:40312 -> 10.96.0.10:80 (default/b 10.244.1.3:8080)"},
		{"connect through a service to a backend outside any pod", connect(api.ProcessConnect{Destination: "192.168.1.5:443",
			Service: &api.ServiceRef{Address: "10.96.0.1:443"}}),
			"🔌 connect default/a /usr/bin/curl 10.244.1.2:40312 -> 10.96.0.1:443 (192.168.1.5:443)"},
		{"connect to a pod", connect(api.ProcessConnect{Destination: "10.244.1.3:8080", DestinationPod: "default/b"}),
			"🔌 connect default/a /usr/bin/curl 10.244.1.2:40312 -> 10.244.1.3:8080 (default/b)"},
		{"connect elsewhere", connect(api.ProcessConnect{Destination: "1.1.1.1:53"}),
			"🔌 connect default/a /usr/bin/curl 10.244.1.2:40312 -> 1.1.1.1:53"},
		{"throttle start", &api.ProcessEvent{ProcessThrottle: &api.ProcessThrottle{Type: api.ThrottleStart, Namespace: "default", Pod: "a"}},
			"🚦 throttle default/a start"},
		{"throttle stop", &api.ProcessEvent{ProcessThrottle: &api.ProcessThrottle{Type: api.ThrottleStop, Namespace: "default", Pod: "a", Dropped: 1234}},
			"🚦 throttle default/a stop dropped=1234"},
		{"throttle of the host", &api.ProcessEvent{ProcessThrottle: &api.ProcessThrottle{Type: api.ThrottleStart}},
			"🚦 throttle host start"},
		{"no process", &api.ProcessEvent{ProcessExec: &api.ProcessExec{}}, "🚀 process host ?"},
		{"no kind", &api.ProcessEvent{}, "❓ unknown event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, EventLine(tc.ev))
		})
	}
}

// serve serves the local API over a unix socket with the hub and cache,
// and returns a function running the sluice command with args against it.
func serve(t *testing.T, hub *events.Hub, procs server.Processes) func(args ...string) (string, error) {
	t.Helper()
	cfg := server.Config{Processes: procs}
	if hub != nil {
		cfg.Events = hub
	}
	return serveConfig(t, cfg)
}

// serveConfig serves what cfg names and returns a function running the
// sluice command with args against it.
func serveConfig(t *testing.T, cfg server.Config) func(args ...string) (string, error) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := server.Listen(socket)
	require.NoError(t, err)
	srv := &http.Server{Handler: server.Handler(cfg)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return func(args ...string) (string, error) {
		cmd := NewCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append([]string{"--socket", socket}, args...))
		err := cmd.Execute()
		return out.String(), err
	}
}

func TestEventsCommand(t *testing.T) {
	hub := events.NewHub(16, nil)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hub.Publish(&api.ProcessEvent{Time: t0, ProcessExec: &api.ProcessExec{Process: curl()}})
	hub.Publish(&api.ProcessEvent{Time: t0, ProcessExec: &api.ProcessExec{Process: &api.Process{PID: 1, Binary: "/bin/sh"}}})
	hub.Publish(&api.ProcessEvent{Time: t0.Add(time.Second), ProcessExit: &api.ProcessExit{Process: curl(), Signal: "SIGKILL"}})
	run := serve(t, hub, nil)

	out, err := run("events")
	require.NoError(t, err)
	assert.Equal(t, "🚀 process default/a /usr/bin/curl http://b\n🚀 process host /bin/sh\n💥 exit default/a /usr/bin/curl http://b SIGKILL\n", out)
	out, err = run("events", "--pod", "a", "--type", "exit")
	require.NoError(t, err)
	assert.Equal(t, "💥 exit default/a /usr/bin/curl http://b SIGKILL\n", out)
	out, err = run("events", "--binary", "sh$", "-o", "json")
	require.NoError(t, err)
	assert.JSONEq(t, `{"process_exec":{"process":{"exec_id":"","pid":1,"uid":0,"euid":0,"auid":0,"cwd":"","binary":"/bin/sh","flags":"","start_time":"0001-01-01T00:00:00Z"}},"node_name":"","time":"2026-01-02T03:04:05Z"}`, out)
	out, err = run("events", "--exec-id", "c2g=", "--namespace", "default", "--last", "1")
	require.NoError(t, err)
	assert.Equal(t, "💥 exit default/a /usr/bin/curl http://b SIGKILL\n", out)
	out, err = run("events", "--since", t0.Add(time.Second).Format(time.RFC3339), "--timestamps")
	require.NoError(t, err)
	assert.Equal(t, t0.Add(time.Second).Local().Format("Jan _2 15:04:05.000")+" 💥 exit default/a /usr/bin/curl http://b SIGKILL\n", out)

	_, err = run("events", "--type", "fork")
	assert.EqualError(t, err, `agent: invalid type filter: "fork"`)
	_, err = run("events", "-o", "yaml")
	assert.EqualError(t, err, `unknown output format "yaml" (want compact or json)`)
	_, err = run("events", "--since", "yesterday")
	assert.ErrorContains(t, err, "--since: ")
}
