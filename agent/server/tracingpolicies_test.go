package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/policy/tracing"
)

// tracingPolicies holds fixed policies (the manager is tested in
// agent/tracingmgr); SetMode records the mode like it.
type tracingPolicies map[tracing.Ref]*api.TracingPolicy

func (tp tracingPolicies) List() []api.TracingPolicy {
	return []api.TracingPolicy{*tp[tracing.Ref{Kind: tracing.KindTracingPolicy, Name: "no-nc"}]}
}

func (tp tracingPolicies) Get(ref tracing.Ref) (api.TracingPolicy, error) {
	p := tp[ref]
	if p == nil {
		return api.TracingPolicy{}, fmt.Errorf("%s %s/%s: %w", ref.Kind, ref.Namespace, ref.Name, api.ErrTracingPolicyNotFound)
	}
	return *p, nil
}

func (tp tracingPolicies) SetMode(ref tracing.Ref, mode tracing.Mode) error {
	if _, err := tp.Get(ref); err != nil {
		return err
	}
	if mode != tracing.ModeEnforce && mode != tracing.ModeMonitor {
		return fmt.Errorf("mode %q: want enforce or monitor", mode)
	}
	tp[ref].Mode, tp[ref].ModeOverridden = string(mode), true
	return nil
}

func TestTracingPolicyRoutes(t *testing.T) {
	tp := tracingPolicies{
		{Kind: tracing.KindTracingPolicy, Name: "no-nc"}: {Kind: tracing.KindTracingPolicy, Name: "no-nc", Mode: "enforce", Accepted: true, ActionsEnforced: 2},
		{Kind: tracing.KindTracingPolicyNamespaced, Namespace: "default", Name: "no-sh"}: {
			Kind: tracing.KindTracingPolicyNamespaced, Namespace: "default", Name: "no-sh", Mode: "monitor", Accepted: true},
	}
	h := server.Handler(server.Config{TracingPolicies: tp, Log: quietFlowLog()})
	status, body := doRaw(t, h, http.MethodGet, "/v1/tracingpolicies", "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `[{"kind":"SluiceTracingPolicy","name":"no-nc","mode":"enforce","accepted":true,
		"eventsPosted":0,"actionsEnforced":2,"actionsMonitored":0}]`, body)
	status, body = doRaw(t, h, http.MethodPut, "/v1/tracingpolicies/-/no-nc/mode", `{"mode":"audit"}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, `{"error":"mode \"audit\": want enforce or monitor"}`+"\n", body)
	status, _ = doRaw(t, h, http.MethodPut, "/v1/tracingpolicies/-/no-nc/mode", ``)
	assert.Equal(t, http.StatusBadRequest, status)
	status, body = doRaw(t, h, http.MethodGet, "/v1/tracingpolicies/-/no-sh", "")
	assert.Equal(t, http.StatusNotFound, status, "the cluster-scoped kind has no no-sh")
	assert.Equal(t, `{"error":"SluiceTracingPolicy /no-sh: tracing policy not found"}`+"\n", body)

	socket := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := server.Listen(socket)
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	client := api.NewClient(socket)
	ctx := context.Background()

	p, err := client.TracingPolicy(ctx, "default", "no-sh")
	require.NoError(t, err)
	assert.Equal(t, "monitor", p.Mode)
	p, err = client.SetTracingPolicyMode(ctx, "default", "no-sh", "enforce")
	require.NoError(t, err)
	assert.Equal(t, api.TracingPolicy{Kind: tracing.KindTracingPolicyNamespaced, Namespace: "default", Name: "no-sh",
		Mode: "enforce", Accepted: true, ModeOverridden: true}, p)
	list, err := client.TracingPolicies(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 1)
	_, err = client.TracingPolicy(ctx, "", "nope")
	assert.ErrorIs(t, err, api.ErrTracingPolicyNotFound)
	assert.EqualError(t, err, "tracing policy not found: nope")
	_, err = client.SetTracingPolicyMode(ctx, "other", "no-sh", "monitor")
	assert.EqualError(t, err, "tracing policy not found: other/no-sh")
}

type ruleEntries struct {
	es  api.TracingRuleEntries
	err error
}

func (r ruleEntries) RuleEntries() (api.TracingRuleEntries, error) { return r.es, r.err }

// GET /v1/tracingrules serves the kernel map counts, or the error reading
// them as a 500; without TracingRules the route does not exist.
func TestTracingRulesRoute(t *testing.T) {
	h := server.Handler(server.Config{TracingRules: ruleEntries{es: api.TracingRuleEntries{"exec.slots": 2, "connect.dests": 0}},
		Log: quietFlowLog()})
	status, body := doRaw(t, h, http.MethodGet, "/v1/tracingrules", "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"exec.slots":2,"connect.dests":0}`, body)
	h = server.Handler(server.Config{TracingRules: ruleEntries{err: errors.New("map gone")}, Log: quietFlowLog()})
	status, body = doRaw(t, h, http.MethodGet, "/v1/tracingrules", "")
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Contains(t, body, "map gone")
	status, _ = doRaw(t, server.Handler(server.Config{Log: quietFlowLog()}), http.MethodGet, "/v1/tracingrules", "")
	assert.Equal(t, http.StatusNotFound, status)
}
