package cli

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

// processCache holds fixed processes (the cache is tested in its package).
type processCache []*api.Process

func (c processCache) List() []*api.Process { return c }

func (c processCache) Get(execID string) (*api.Process, []*api.Process, bool) {
	byID := map[string]*api.Process{}
	for _, p := range c {
		byID[p.ExecID] = p
	}
	p, ok := byID[execID]
	if !ok {
		return nil, nil, false
	}
	var ancestors []*api.Process
	for a := byID[p.ParentExecID]; a != nil; a = byID[a.ParentExecID] {
		ancestors = append(ancestors, a)
	}
	return p, ancestors, true
}

// tree: init -> containerd-shim -> {pause, sh -> curl}, init -> sshd;
// a process whose parent left the cache is a root of its own.
func processes() processCache {
	pod := &api.Pod{Namespace: "default", Name: "a"}
	return processCache{
		{ExecID: "c2g=", ParentExecID: "c2hpbQ==", PID: 300, Binary: "/bin/sh", Arguments: "-c curl http://b", Pod: pod},
		{ExecID: "aW5pdA==", PID: 1, Binary: "/sbin/init", Flags: "procFS"},
		{ExecID: "Y3VybA==", ParentExecID: "c2g=", PID: 301, Binary: "/usr/bin/curl", Arguments: "http://b", Pod: pod, Exited: true},
		{ExecID: "c2hpbQ==", ParentExecID: "aW5pdA==", PID: 100, Binary: "/usr/bin/containerd-shim-runc-v2", Arguments: "-namespace k8s.io"},
		{ExecID: "cGF1c2U=", ParentExecID: "c2hpbQ==", PID: 120, Binary: "/pause", Pod: pod},
		{ExecID: "c3NoZA==", ParentExecID: "aW5pdA==", PID: 50, Binary: "/usr/sbin/sshd", Arguments: "-D"},
		{ExecID: "b3JwaGFu", ParentExecID: "Z29uZQ==", PID: 900, Binary: "/usr/bin/sleep", Arguments: "60"},
	}
}

func TestWriteProcessTable(t *testing.T) {
	ps := processes()
	SortProcesses(ps)
	var buf bytes.Buffer
	require.NoError(t, WriteProcessTable(&buf, ps))
	want := "" +
		"EXEC-ID   PID  POD        BINARY                            ARGS\n" +
		"aW5pdA==  1    host       /sbin/init                        \n" +
		"c3NoZA==  50   host       /usr/sbin/sshd                    -D\n" +
		"c2hpbQ==  100  host       /usr/bin/containerd-shim-runc-v2  -namespace k8s.io\n" +
		"cGF1c2U=  120  default/a  /pause                            \n" +
		"c2g=      300  default/a  /bin/sh                           -c curl http://b\n" +
		"Y3VybA==  301  default/a  /usr/bin/curl                     http://b\n" +
		"b3JwaGFu  900  host       /usr/bin/sleep                    60\n"
	assert.Equal(t, want, buf.String())
}

func TestWriteProcessTree(t *testing.T) {
	ps := processes()
	SortProcesses(ps)
	var buf bytes.Buffer
	require.NoError(t, WriteProcessTree(&buf, ps))
	want := "" +
		"1 /sbin/init  host  aW5pdA==\n" +
		"├─ 50 /usr/sbin/sshd -D  host  c3NoZA==\n" +
		"└─ 100 /usr/bin/containerd-shim-runc-v2 -namespace k8s.io  host  c2hpbQ==\n" +
		"   ├─ 120 /pause  default/a  cGF1c2U=\n" +
		"   └─ 300 /bin/sh -c curl http://b  default/a  c2g=\n" +
		"      └─ 301 /usr/bin/curl http://b  default/a  Y3VybA==  (exited)\n" +
		"900 /usr/bin/sleep 60  host  b3JwaGFu\n"
	assert.Equal(t, want, buf.String())

	// A parent loop (a corrupt cache) neither hangs nor loses or repeats a
	// process.
	buf.Reset()
	loop := []*api.Process{{ExecID: "a", ParentExecID: "b", PID: 1}, {ExecID: "b", ParentExecID: "a", PID: 2}, {ExecID: "c", ParentExecID: "c", PID: 3}}
	require.NoError(t, WriteProcessTree(&buf, loop))
	assert.Equal(t, "3 ?  host  c\n1 ?  host  a\n└─ 2 ?  host  b\n", buf.String())
}

func TestWriteProcessDetail(t *testing.T) {
	ps := processes()
	p, ancestors, ok := ps.Get("c2g=")
	require.True(t, ok)
	p.Cwd, p.UID, p.EUID, p.AUID = "/app", 1000, 0, ^uint32(0)
	p.Cap = &api.Capabilities{Effective: []string{"CAP_CHOWN", "CAP_KILL"}}
	p.NS = &api.Namespaces{PID: api.Namespace{Inum: 4026532200}, Mnt: api.Namespace{Inum: 4026532201}, Net: api.Namespace{Inum: 4026532202}}
	p.Pod.Container = &api.Container{ID: "abc123", Name: "app", Image: &api.Image{Name: "docker.io/library/alpine:3"}}
	p.Pod.Workload, p.Pod.WorkloadKind = "web", "Deployment"
	p.StartTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p.Flags = "execve clone"
	var buf bytes.Buffer
	require.NoError(t, WriteProcessDetail(&buf, api.ProcessDetail{Process: p, Ancestors: ancestors}))
	want := "" +
		"Exec ID:         c2g=\n" +
		"Parent exec ID:  c2hpbQ==\n" +
		"PID:             300\n" +
		"Binary:          /bin/sh\n" +
		"Arguments:       -c curl http://b\n" +
		"Cwd:             /app\n" +
		"UID:             1000 (euid 0, auid unset)\n" +
		"Pod:             default/a\n" +
		"Container:       app abc123 (docker.io/library/alpine:3)\n" +
		"Workload:        Deployment/web\n" +
		"Capabilities:    CAP_CHOWN CAP_KILL\n" +
		"Namespaces:      pid:4026532200 mnt:4026532201 net:4026532202\n" +
		"Started:         " + p.StartTime.Local().Format(time.RFC3339) + "\n" +
		"Flags:           execve clone\n" +
		"\n" +
		"Ancestors (parent first):\n" +
		"EXEC-ID   PID  POD   BINARY                            ARGS\n" +
		"c2hpbQ==  100  host  /usr/bin/containerd-shim-runc-v2  -namespace k8s.io\n" +
		"aW5pdA==  1    host  /sbin/init                        \n"
	assert.Equal(t, want, buf.String())

	buf.Reset()
	root, _, _ := ps.Get("aW5pdA==")
	require.NoError(t, WriteProcessDetail(&buf, api.ProcessDetail{Process: root}))
	assert.Contains(t, buf.String(), "Parent exec ID:  -\n")
	assert.Contains(t, buf.String(), "UID:             0 (euid 0, auid 0)\n")
	assert.Contains(t, buf.String(), "Started:         -\nFlags:           procFS\n\nNo ancestors known.\n")
	assert.EqualError(t, WriteProcessDetail(&buf, api.ProcessDetail{}), "the agent returned no process")
}

func TestProcessCommands(t *testing.T) {
	run := serve(t, nil, processes())
	out, err := run("process", "list", "--tree")
	require.NoError(t, err)
	assert.Contains(t, out, "└─ 100 /usr/bin/containerd-shim-runc-v2 -namespace k8s.io  host  c2hpbQ==\n   ├─ 120 /pause")
	out, err = run("process", "list")
	require.NoError(t, err)
	assert.Contains(t, out, "EXEC-ID   PID  POD        BINARY")
	out, err = run("process", "list", "-o", "json")
	require.NoError(t, err)
	var list []*api.Process
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	assert.Len(t, list, 7)
	assert.Equal(t, uint32(1), list[0].PID, "sorted by pid")

	out, err = run("ps", "get", "Y3VybA==", "-o", "json")
	require.NoError(t, err)
	var d api.ProcessDetail
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	assert.Equal(t, uint32(301), d.Process.PID)
	var chain []uint32
	for _, a := range d.Ancestors {
		chain = append(chain, a.PID)
	}
	assert.Equal(t, []uint32{300, 100, 1}, chain)
	out, err = run("process", "get", "c2hpbQ==")
	require.NoError(t, err)
	assert.Contains(t, out, "Binary:          /usr/bin/containerd-shim-runc-v2\n")
	_, err = run("process", "get", "bm9wZQ==")
	assert.EqualError(t, err, "process not found: bm9wZQ== (exited and gone from the cache, or never seen)")
}
