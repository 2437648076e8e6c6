package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	b, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, strings.TrimSpace(string(b))
}

// Each probe answers 200 "ok" when its check passes and 503 with the
// reason when it fails, independently of the other probe.
func TestHealthHandlerStates(t *testing.T) {
	var liveErr, readyErr error
	h := healthHandler(
		func(context.Context) error { return liveErr },
		func(context.Context) error { return readyErr },
	)
	for _, tc := range []struct {
		name            string
		live, ready     error
		liveCode, rCode int
		liveMsg, rMsg   string
	}{
		{"starting", nil, errors.New("kubernetes caches not synced"), 200, 503, "ok", "kubernetes caches not synced"},
		{"ready", nil, nil, 200, 200, "ok", "ok"},
		{"unpinned", nil, errors.New("program x is not pinned"), 200, 503, "ok", "program x is not pinned"},
		{"api loop stuck", errors.New("api loop not answering"), nil, 503, 200, "api loop not answering", "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			liveErr, readyErr = tc.live, tc.ready
			code, body := get(t, h, http.MethodGet, "/healthz")
			assert.Equal(t, tc.liveCode, code)
			assert.Equal(t, tc.liveMsg, body)
			code, body = get(t, h, http.MethodGet, "/readyz")
			assert.Equal(t, tc.rCode, code)
			assert.Equal(t, tc.rMsg, body)
		})
	}
	code, _ := get(t, h, http.MethodPost, "/readyz")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	code, _ = get(t, h, http.MethodGet, "/other")
	assert.Equal(t, http.StatusNotFound, code)
}

// A daemon whose datapath is not loaded is not ready, and says so.
func TestReadinessWithoutDatapath(t *testing.T) {
	d := &Daemon{}
	assert.EqualError(t, d.readiness(context.Background()), "datapath not loaded")
}
