package ui

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/sluicenet/sluice/agent/api"
)

func TestSnapshotKeepsTheNewestFlows(t *testing.T) {
	s := NewServer(nil)
	t0 := time.Unix(1000, 0)
	for i := range maxFlows + 10 {
		verdict := "FORWARDED"
		if i%2 == 1 {
			verdict = "DROPPED"
		}
		s.add(api.Flow{Time: t0.Add(time.Duration(i) * time.Second), Verdict: verdict, DstPort: uint16(i % 60000)})
	}
	all, _, _, _ := s.snapshot(api.FlowFilter{})
	assert.Len(t, all, maxFlows)
	assert.Equal(t, t0.Add(10*time.Second), all[0].Time, "the ten oldest flows went")
	assert.Equal(t, t0.Add((maxFlows+9)*time.Second), all[len(all)-1].Time)
	dropped, _, _, _ := s.snapshot(api.FlowFilter{Verdict: "dropped", Last: 3})
	assert.Len(t, dropped, 3)
	for i, f := range dropped {
		assert.Equal(t, "DROPPED", f.Verdict)
		assert.Equal(t, t0.Add(time.Duration(maxFlows+5+2*i)*time.Second), f.Time, "the newest three, oldest first")
	}
}

func TestHandlerAnswersLoopbackOnly(t *testing.T) {
	h := NewServer(nil).Handler()
	for host, want := range map[string]int{
		"127.0.0.1:12000": http.StatusOK, "localhost:12000": http.StatusOK, "[::1]:12000": http.StatusOK,
		"evil.example:12000": http.StatusForbidden, "192.0.2.1:12000": http.StatusForbidden,
	} {
		r := httptest.NewRequest(http.MethodGet, "/api/graph?verdict=DROPPED", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		assert.Equal(t, want, w.Code, host+" answered "+strconv.Itoa(w.Code))
	}
}

func TestHandlerServesThePage(t *testing.T) {
	h := NewServer(nil).Handler()
	for path, want := range map[string]string{"/": "Sluice service map", "/app.js": "function draw", "/style.css": ".edge path"} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Host = "127.0.0.1:12000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		assert.Equal(t, http.StatusOK, w.Code, path)
		assert.Contains(t, w.Body.String(), want, path)
	}
	r := httptest.NewRequest(http.MethodGet, "/api/graph?port=notaport", nil)
	r.Host = "127.0.0.1:12000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, w.Body.String(), "invalid port filter")
}
