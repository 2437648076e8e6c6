package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/events"
	"github.com/sluicenet/sluice/agent/server"
)

// procEvent returns an exec (odd n: an exit) of a process with pid n in
// pod default/a.
func procEvent(n uint32) *api.ProcessEvent {
	p := &api.Process{ExecID: "e", PID: n, Binary: "/bin/true", Pod: &api.Pod{Namespace: "default", Name: "a"}}
	if n%2 == 1 {
		return &api.ProcessEvent{ProcessExit: &api.ProcessExit{Process: p}}
	}
	return &api.ProcessEvent{ProcessExec: &api.ProcessExec{Process: p}}
}

// GET /v1/events over the real hub: filters, bad queries, and follow mode.
func TestServeEvents(t *testing.T) {
	hub := events.NewHub(8, nil)
	for i := range uint32(4) {
		hub.Publish(procEvent(i))
	}
	srv := httptest.NewServer(server.Handler(server.Config{Events: hub, Log: quietFlowLog()}))
	defer srv.Close()

	get := func(query string) (*http.Response, []uint32) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/v1/events?" + query)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out []uint32
		dec := json.NewDecoder(resp.Body)
		for resp.StatusCode == http.StatusOK && dec.More() {
			var ev api.ProcessEvent
			require.NoError(t, dec.Decode(&ev))
			out = append(out, ev.Subject().PID)
		}
		return resp, out
	}
	resp, got := get("type=process_exit")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	assert.Equal(t, []uint32{1, 3}, got)
	_, got = get("pod=default/a&last=3")
	assert.Equal(t, []uint32{1, 2, 3}, got)
	for _, q := range []string{"type=fork", "binary=(", "last=x"} {
		resp, _ = get(q)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/events?follow=true&type=exec&last=1", nil)
	require.NoError(t, err)
	fresp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer fresp.Body.Close()
	sc := bufio.NewScanner(fresp.Body)
	next := func() uint32 {
		t.Helper()
		require.True(t, sc.Scan(), "stream ended: %v", sc.Err())
		var ev api.ProcessEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev))
		return ev.Subject().PID
	}
	assert.Equal(t, uint32(2), next())
	hub.Publish(procEvent(5)) // an exit: filtered out
	hub.Publish(procEvent(6))
	assert.Equal(t, uint32(6), next())
}

// cache holds fixed processes: the process cache is tested in its package;
// here only the routes, the encoding and the client are at stake.
type cache map[string]*api.Process

func (c cache) List() []*api.Process {
	var out []*api.Process
	for _, id := range []string{"cm9vdA==", "a/b+c=="} {
		if p, ok := c[id]; ok {
			out = append(out, p)
		}
	}
	return out
}

func (c cache) Get(execID string) (*api.Process, []*api.Process, bool) {
	p, ok := c[execID]
	if !ok {
		return nil, nil, false
	}
	var ancestors []*api.Process
	for a := c[p.ParentExecID]; a != nil; a = c[a.ParentExecID] {
		ancestors = append(ancestors, a)
	}
	return p, ancestors, true
}

// The process routes and the client's process and event methods, over
// the unix socket. Exec ids are base64 and may hold "/" and "+".
func TestProcessRoutesAndClient(t *testing.T) {
	root := &api.Process{ExecID: "cm9vdA==", PID: 1, Binary: "/sbin/init"}
	child := &api.Process{ExecID: "a/b+c==", ParentExecID: "cm9vdA==", PID: 42, Binary: "/bin/sh", Arguments: "-c id"}
	hub := events.NewHub(8, nil)
	hub.Publish(&api.ProcessEvent{NodeName: "n", ProcessExec: &api.ProcessExec{Process: child, Parent: root}})
	hub.Publish(&api.ProcessEvent{NodeName: "n", ProcessExec: &api.ProcessExec{Process: root}})
	c := cache{root.ExecID: root, child.ExecID: child}
	h := server.Handler(server.Config{Events: hub, Processes: c, Log: quietFlowLog()})

	status, body := doRaw(t, h, http.MethodGet, "/v1/processes", "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `[{"exec_id":"cm9vdA==","pid":1,"uid":0,"euid":0,"auid":0,"cwd":"","binary":"/sbin/init","flags":"","start_time":"0001-01-01T00:00:00Z"},
		{"exec_id":"a/b+c==","parent_exec_id":"cm9vdA==","pid":42,"uid":0,"euid":0,"auid":0,"cwd":"","binary":"/bin/sh","arguments":"-c id","flags":"","start_time":"0001-01-01T00:00:00Z"}]`, body)
	status, body = doRaw(t, server.Handler(server.Config{Processes: cache{}}), http.MethodGet, "/v1/processes", "")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "[]\n", body, "an empty cache is an empty list")
	status, body = doRaw(t, h, http.MethodGet, "/v1/processes/bm9wZQ==", "")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, `{"error":"process bm9wZQ== not found"}`+"\n", body)

	socket := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := server.Listen(socket)
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	client := api.NewClient(socket)
	ctx := context.Background()

	list, err := client.Processes(ctx)
	require.NoError(t, err)
	assert.Equal(t, []*api.Process{root, child}, list)
	d, err := client.Process(ctx, child.ExecID)
	require.NoError(t, err)
	assert.Equal(t, api.ProcessDetail{Process: child, Ancestors: []*api.Process{root}}, d)
	_, err = client.Process(ctx, "bm9wZQ==")
	require.ErrorIs(t, err, api.ErrProcessNotFound)
	assert.EqualError(t, err, "process not found: bm9wZQ==")

	var pids []uint32
	collect := func(ev *api.ProcessEvent) error { pids = append(pids, ev.Subject().PID); return nil }
	require.NoError(t, client.Events(ctx, api.EventFilter{ExecID: root.ExecID}, collect))
	assert.Equal(t, []uint32{42, 1}, pids, "the process and its children")
	err = client.Events(ctx, api.EventFilter{Types: []string{"fork"}}, collect)
	assert.EqualError(t, err, `agent: invalid type filter: "fork"`)

	// Follow: the history (whose arrival says the follower is registered),
	// new matching events, and the client returns when its context ends.
	fctx, cancel := context.WithCancel(ctx)
	got := make(chan uint32, 8)
	done := make(chan error, 1)
	go func() {
		done <- client.Events(fctx, api.EventFilter{Follow: true, Binary: "^/bin/"}, func(ev *api.ProcessEvent) error {
			got <- ev.Subject().PID
			return nil
		})
	}()
	assert.Equal(t, uint32(42), <-got)
	hub.Publish(&api.ProcessEvent{ProcessExec: &api.ProcessExec{Process: &api.Process{PID: 7, Binary: "/usr/bin/x"}}})
	hub.Publish(&api.ProcessEvent{ProcessExec: &api.ProcessExec{Process: &api.Process{PID: 8, Binary: "/bin/y"}}})
	assert.Equal(t, uint32(8), <-got)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}
