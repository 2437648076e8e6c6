package reconcile

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusRecordsSyncs(t *testing.T) {
	var s Status
	t0 := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	s.Record(nil, t0)
	s.Record(errors.New("map full"), t0.Add(time.Second))
	s.Record(errors.New("map still full"), t0.Add(2*time.Second))
	got := s.Get()
	assert.Equal(t, LoopStatus{Syncs: 3, Failures: 2, Retries: 2, LastSuccess: t0, LastFailure: t0.Add(2 * time.Second), LastError: "map still full"}, got)
	s.Record(nil, t0.Add(3*time.Second))
	got = s.Get()
	assert.Zero(t, got.Retries, "a success ends the retries")
	assert.Equal(t, t0.Add(3*time.Second), got.LastSuccess)
	assert.Equal(t, "map still full", got.LastError, "the last error stays for the operator")
	assert.Equal(t, uint64(2), got.Failures)
}

func TestLoopRecordsStatus(t *testing.T) {
	r := &recorder{fail: 2}
	var st Status
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Loop(ctx, Config{Resync: time.Hour, MinBackoff: time.Millisecond, Status: &st}, r.sync)
		close(done)
	}()
	require.Eventually(t, func() bool { return st.Get().Syncs == 3 }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
	got := st.Get()
	assert.Equal(t, uint64(2), got.Failures)
	assert.Zero(t, got.Retries)
	assert.Equal(t, "boom", got.LastError)
	assert.False(t, got.LastSuccess.Before(got.LastFailure))
}
