package datapath_test

import (
	"os"
	"testing"
)

// TestMain lets the test binary double as the client process the socket-LB
// tests start inside a test cgroup (see sockClientMain).
func TestMain(m *testing.M) {
	if os.Getenv(sockClientEnv) != "" {
		os.Exit(sockClientMain())
	}
	os.Exit(m.Run())
}
