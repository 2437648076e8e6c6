package harness

// T is the part of testing.TB the harness uses. Tests pass their *testing.T;
// programs such as the demo pass their own implementation (see Runner).
type T interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	TempDir() string
}
