package server_test

import (
	"net/http"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/server"
)

func TestStatusRoute(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	h := server.Handler(server.Config{Log: log, Status: func() api.Status {
		return api.Status{Version: "v1", Healthy: false, Problems: []string{"loop policy failing (1 retries): boom"}}
	}})
	status, body := doRaw(t, h, http.MethodGet, "/v1/status", "")
	assert.Equal(t, http.StatusOK, status, "an unhealthy agent still answers its status")
	assert.Contains(t, body, `"healthy":false,"problems":["loop policy failing (1 retries): boom"]`)
	status, _ = doRaw(t, server.Handler(server.Config{Log: log}), http.MethodGet, "/v1/status", "")
	assert.Equal(t, http.StatusNotFound, status)
}
