package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/flows"
	"github.com/sluicenet/sluice/agent/server"
)

func quietFlowLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// numberedFlow returns a flow numbered n (its DstPort), the verdict
// alternating.
func numberedFlow(n int) api.Flow {
	v := "FORWARDED"
	if n%2 == 1 {
		v = "DROPPED"
	}
	return api.Flow{Verdict: v, Direction: "ingress", DstPort: uint16(n)}
}

// GET /v1/flows over the real flow observer: filters, bad queries, and
// follow mode (the history, then new matching flows as they come).
func TestServeFlows(t *testing.T) {
	o := flows.New(8, nil, nil, quietFlowLog())
	for i := range 4 {
		o.Add(numberedFlow(i))
	}
	srv := httptest.NewServer(server.Handler(server.Config{Flows: o, Log: quietFlowLog()}))
	defer srv.Close()

	get := func(query string) (*http.Response, []int) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/v1/flows?" + query)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out []int
		dec := json.NewDecoder(resp.Body)
		for dec.More() {
			var f api.Flow
			require.NoError(t, dec.Decode(&f))
			out = append(out, int(f.DstPort))
		}
		return resp, out
	}
	resp, got := get("verdict=DROPPED")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	assert.Equal(t, []int{1, 3}, got)
	resp, _ = get("port=notaport")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// follow: the history, then new flows that match.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/flows?follow=true&verdict=DROPPED&last=1", nil)
	require.NoError(t, err)
	fresp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer fresp.Body.Close()
	sc := bufio.NewScanner(fresp.Body)
	next := func() int {
		t.Helper()
		require.True(t, sc.Scan(), "stream ended: %v", sc.Err())
		var f api.Flow
		require.NoError(t, json.Unmarshal(sc.Bytes(), &f))
		return int(f.DstPort)
	}
	assert.Equal(t, 3, next())
	o.Add(numberedFlow(4)) // forwarded: filtered out
	o.Add(numberedFlow(5))
	assert.Equal(t, 5, next())
}
